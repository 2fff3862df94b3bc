"""The exported Dofbot policy in numpy: what the Jetson runs, without torch or rl_games.

numpy only (any numpy since 1.13, JetPack 4's), Python 3.6 compatible. The ``.npz``
file is written by ``dofbot-rl export format=npz`` (:mod:`dofbot_rl.rl.export`); it
holds the weights, the observation normaliser and the deployment facts:

==================  ================  =================================================
key                 shape / dtype     meaning
==================  ================  =================================================
format              str               ``"dofbot-rl-policy"``
format_version      int64             1
obs_clip            float32           raw observations clamped to +-this (5)
obs_mean, obs_var   (29,) float32     running mean / variance of the observations
norm_eps            float32           added to the variance (1e-5, rl_games)
norm_clip           float32           normalised observations clamped to +-this (5)
num_layers          int64             hidden layers n
layer<i>_weight     (out, in) float32 hidden layer i (``y = act(W x + b)``)
layer<i>_bias       (out,) float32
activation          str               ``elu`` | ``relu`` | ``tanh`` | ``None``
mu_weight, mu_bias  (6, 64), (6,)     the action mean
action_clip         float32           actions clamped to +-this (1)
dof_lower/upper     (6,) float32      joint limits (rad) that scale observations/actions
dof_vel_scale       float32           joint velocity (rad/s) factor in the observation
control_rate_hz     float32           policy rate (60 Hz)
gripper_index       int64             action slot the task zeroes (5)
goal_region         (4,) float32      xy_min, xy_max, z_min, z_max (m) of training goals
success_tolerance   float32           goal reached within this distance (m)
success_window_s    float32           time a goal is given before it counts as missed (s)
episode_length_s    float32           training episode length (s)
observation_names   (29,) str         layout of the observation
action_names        (6,) str          joints driven by the actions
==================  ================  =================================================

The computation is the rl_games player's (:mod:`dofbot_rl.rl.policy`)::

    x = clip((clip(obs, +-obs_clip) - obs_mean) / sqrt(obs_var + norm_eps), +-norm_clip)
    actions = clip(mu_weight @ act(... act(layer0_weight @ x + layer0_bias) ...) + mu_bias, +-action_clip)
"""

import math
import zipfile
from dofbot_rl.errors import DofbotRlError

try:
    import numpy as np
except ImportError:  # pragma: no cover - the Jetson image ships numpy (python3-numpy)
    raise ImportError("the on-robot policy needs numpy: `sudo apt-get install python3-numpy` "
                      "(or `pip3 install numpy`) on the Jetson")

FORMAT = "dofbot-rl-policy"
FORMAT_VERSION = 1

#: Bounds on what a policy file can be, checked before anything is inflated: a Dofbot
#: reacher policy is a few MLP layers of at most a few hundred units (about 1 MB).
MAX_FILE_ENTRIES = 64
MAX_ENTRY_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 32 * 1024 * 1024
MAX_LAYERS = 16
MAX_WIDTH = 4096
#: Highest control rate a policy file may ask for (Hz); the task runs at 60.
MAX_CONTROL_RATE_HZ = 1000.0

_REQUIRED = ("obs_clip", "obs_mean", "obs_var", "norm_eps", "norm_clip", "num_layers", "activation",
             "mu_weight", "mu_bias", "action_clip")
_META_FLOATS = ("dof_vel_scale", "control_rate_hz", "success_tolerance", "success_window_s", "episode_length_s")
_META_VECTORS = ("dof_lower", "dof_upper", "goal_region")
_META_STRINGS = ("observation_names", "action_names")


def _elu(x):
    # torch.nn.ELU(alpha=1): x if x > 0 else expm1(x)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(np.float32)


def _relu(x):
    return np.maximum(x, np.float32(0))


_ACTIVATIONS = {"elu": _elu, "relu": _relu, "tanh": np.tanh, "None": lambda x: x}


class PolicyFileError(DofbotRlError, ValueError):
    """The ``.npz`` file is missing, unreadable or not a dofbot-rl policy."""


def read_npz(path):
    """The arrays of an ``.npz`` file, read with every size checked before it is inflated.

    The zip directory's sizes are bounded (:data:`MAX_FILE_ENTRIES`,
    :data:`MAX_ENTRY_BYTES`, :data:`MAX_TOTAL_BYTES`), so a compression bomb is refused
    unread; each ``.npy`` header's dtype and shape are checked against the bytes the entry
    really holds before any array is allocated; object arrays are refused (nothing is
    unpickled). Used instead of ``np.load``, whose broken-zip errors print tracebacks on
    numpy 1.19 (the Jetson's) and which allocates what a header claims.

    Returns:
        ``{name: ndarray}`` (names without ``.npy``).

    Raises:
        PolicyFileError: a bound is exceeded or an entry is malformed.
        OSError, zipfile.BadZipFile: the file cannot be read or is not a zip file.
    """
    arrays = {}
    with zipfile.ZipFile(str(path)) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILE_ENTRIES:
            raise PolicyFileError("%d entries, more than %d" % (len(infos), MAX_FILE_ENTRIES))
        total = sum(info.file_size for info in infos)
        if total > MAX_TOTAL_BYTES or any(info.file_size > MAX_ENTRY_BYTES for info in infos):
            raise PolicyFileError("entries would inflate to %d bytes (limits: %d per entry, %d in all)"
                                  % (total, MAX_ENTRY_BYTES, MAX_TOTAL_BYTES))
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise PolicyFileError("entry %r is not an .npy array" % info.filename)
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise PolicyFileError("entry %r has .npy version %s" % (info.filename, version))
                if dtype.hasobject:
                    raise PolicyFileError("entry %r holds Python objects" % info.filename)
                count = 1
                for n in shape:
                    count *= int(n)
                size = count * dtype.itemsize
                if size > info.file_size:
                    raise PolicyFileError("entry %r claims shape %s, more than its %d bytes"
                                          % (info.filename, shape, info.file_size))
                data = fh.read(size)
                if len(data) != size:
                    raise PolicyFileError("entry %r is truncated" % info.filename)
            array = np.frombuffer(data, dtype=dtype, count=count)
            arrays[info.filename[:-4]] = array.reshape(shape, order="F" if fortran else "C").copy()
    return arrays


class NumpyPolicy(object):
    """Deterministic policy ``obs (29,) or (N, 29) -> actions (6,) or (N, 6)`` in ``[-1, 1]``, float32.

    Build it with :meth:`from_npz` (a file from ``dofbot-rl export``) or
    :meth:`from_arrays`. :attr:`meta` holds the deployment facts of the file (joint
    limits, velocity scale, control rate, goal region...; the ``dof_*``, ``*_hz``,
    ``goal_region``, ``success_*`` keys of the table above) as plain Python values,
    absent keys omitted.

    Raises:
        PolicyFileError: from the constructors, for missing keys or inconsistent shapes.
    """

    def __init__(self, obs_mean, obs_var, layers, mu_weight, mu_bias, activation="elu", obs_clip=5.0,
                 norm_eps=1e-5, norm_clip=5.0, action_clip=1.0, meta=None):
        f32 = np.float32
        self.obs_mean = np.asarray(obs_mean, dtype=f32).reshape(-1)
        self.obs_var = np.asarray(obs_var, dtype=f32).reshape(-1)
        self.layers = [(np.asarray(w, dtype=f32), np.asarray(b, dtype=f32).reshape(-1)) for w, b in layers]
        self.mu_weight = np.asarray(mu_weight, dtype=f32)
        self.mu_bias = np.asarray(mu_bias, dtype=f32).reshape(-1)
        if activation not in _ACTIVATIONS:
            raise PolicyFileError("activation %r is not one of %s" % (activation, sorted(_ACTIVATIONS)))
        self.activation = activation
        self._act = _ACTIVATIONS[activation]
        self.obs_clip, self.norm_eps = f32(obs_clip), f32(norm_eps)
        self.norm_clip, self.action_clip = f32(norm_clip), f32(action_clip)
        # The normaliser's denominator, computed exactly as rl_games does (float32).
        self._std = np.sqrt(self.obs_var + self.norm_eps).astype(f32)
        self.meta = dict(meta or {})
        arrays = [("obs_mean", self.obs_mean), ("obs_var", self.obs_var), ("mu_weight", self.mu_weight),
                  ("mu_bias", self.mu_bias)]
        for i, (w, b) in enumerate(self.layers):
            arrays += [("layer%d_weight" % i, w), ("layer%d_bias" % i, b)]
        for name, value in arrays:
            if any(n > MAX_WIDTH for n in value.shape):
                raise PolicyFileError("%s has shape %s: wider than %d" % (name, value.shape, MAX_WIDTH))
            if not np.all(np.isfinite(value)):
                raise PolicyFileError("%s holds NaN or infinite values" % name)
        scalars = (("obs_clip", self.obs_clip), ("norm_eps", self.norm_eps), ("norm_clip", self.norm_clip),
                   ("action_clip", self.action_clip))
        for name, value in scalars:
            if not (math.isfinite(float(value)) and value > 0):
                raise PolicyFileError("%s is %r, expected a finite number > 0" % (name, float(value)))
        if np.any(self.obs_var < 0):
            raise PolicyFileError("obs_var holds negative variances")
        width = self.obs_mean.shape[0]
        if self.obs_var.shape != (width,):
            raise PolicyFileError("obs_var has shape %s, expected (%d,)" % (self.obs_var.shape, width))
        for i, (w, b) in enumerate(self.layers):
            if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
                raise PolicyFileError("layer%d has shape %s / %s, expected (*, %d)" % (i, w.shape, b.shape, width))
            width = w.shape[0]
        if self.mu_weight.ndim != 2 or self.mu_weight.shape[1] != width or self.mu_bias.shape != (self.mu_weight.shape[0],):
            raise PolicyFileError("mu has shape %s / %s, expected (*, %d)" % (self.mu_weight.shape, self.mu_bias.shape,
                                                                              width))

    @property
    def num_observations(self):
        """Observation size (29)."""
        return int(self.obs_mean.shape[0])

    @property
    def num_actions(self):
        """Action size (6)."""
        return int(self.mu_bias.shape[0])

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, arrays):
        """Build from a mapping of the ``npz`` keys (see the module table).

        Raises:
            PolicyFileError: a required key is missing or a shape is wrong.
        """
        missing = [k for k in _REQUIRED if k not in arrays]
        num_layers = int(arrays["num_layers"]) if "num_layers" in arrays else 0
        if not 0 <= num_layers <= MAX_LAYERS:
            raise PolicyFileError("num_layers is %d, expected 0..%d" % (num_layers, MAX_LAYERS))
        for i in range(num_layers):
            missing += [k for k in ("layer%d_weight" % i, "layer%d_bias" % i) if k not in arrays]
        if missing:
            raise PolicyFileError("policy arrays lack %s" % ", ".join(missing))
        if "format" in arrays and str(arrays["format"]) != FORMAT:
            raise PolicyFileError("format is %r, expected %r" % (str(arrays["format"]), FORMAT))
        if "format_version" in arrays and int(arrays["format_version"]) > FORMAT_VERSION:
            raise PolicyFileError("format_version %d is newer than this reader (%d): update dofbot_rl on the robot"
                                  % (int(arrays["format_version"]), FORMAT_VERSION))
        meta = {}
        for key in _META_FLOATS:
            if key in arrays:
                meta[key] = float(arrays[key])
                if not math.isfinite(meta[key]) or meta[key] < 0:
                    raise PolicyFileError("%s is %r, expected a finite number >= 0" % (key, meta[key]))
        rate = meta.get("control_rate_hz")
        if rate is not None and not 0 < rate <= MAX_CONTROL_RATE_HZ:
            raise PolicyFileError("control_rate_hz is %r, expected a number in (0, %g]" % (rate, MAX_CONTROL_RATE_HZ))
        for key in _META_VECTORS:
            if key in arrays:
                meta[key] = [float(v) for v in np.asarray(arrays[key]).reshape(-1)]
                if not all(math.isfinite(v) for v in meta[key]):
                    raise PolicyFileError("%s must be finite, got %r" % (key, meta[key]))
        for key in _META_STRINGS:
            if key in arrays:
                meta[key] = [str(v) for v in np.asarray(arrays[key]).reshape(-1)]
        if "gripper_index" in arrays:
            meta["gripper_index"] = int(arrays["gripper_index"])
        layers = [(arrays["layer%d_weight" % i], arrays["layer%d_bias" % i]) for i in range(num_layers)]
        return cls(arrays["obs_mean"], arrays["obs_var"], layers, arrays["mu_weight"], arrays["mu_bias"],
                   activation=str(arrays["activation"]), obs_clip=float(arrays["obs_clip"]),
                   norm_eps=float(arrays["norm_eps"]), norm_clip=float(arrays["norm_clip"]),
                   action_clip=float(arrays["action_clip"]), meta=meta)

    @classmethod
    def from_npz(cls, path):
        """Load a policy written by ``dofbot-rl export format=npz``.

        Raises:
            PolicyFileError: the file is missing, not an ``.npz`` or not a dofbot-rl policy.
        """
        try:
            arrays = read_npz(path)
        except (IOError, OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise PolicyFileError("cannot read policy file %s: %s" % (path, exc))
        if "format" not in arrays:
            raise PolicyFileError("%s is not a dofbot-rl policy (no 'format' entry); export one with "
                                  "`dofbot-rl export checkpoint=... format=npz`" % (path,))
        try:
            return cls.from_arrays(arrays)
        except PolicyFileError as exc:
            raise PolicyFileError("%s: %s" % (path, exc))
        except (TypeError, ValueError, IndexError) as exc:  # entries of the wrong type or shape
            raise PolicyFileError("%s is not a valid dofbot-rl policy: %s" % (path, exc))

    # -- inference ----------------------------------------------------------------------

    def act(self, obs):
        """Actions for observations.

        Args:
            obs: ``(29,)`` or ``(N, 29)`` numbers (the task's layout).

        Returns:
            float32 actions ``(6,)`` or ``(N, 6)`` in ``[-action_clip, action_clip]``.

        Raises:
            ValueError: wrong size or non-finite observations.
        """
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        x = x.reshape(1, -1) if single else x
        if x.ndim != 2 or x.shape[1] != self.num_observations:
            raise ValueError("observations must be (%d,) or (N, %d), got %s"
                             % (self.num_observations, self.num_observations, np.shape(obs)))
        if not np.all(np.isfinite(x)):
            raise ValueError("observations must be finite, got %r" % (x[~np.isfinite(x)][:5],))
        x = np.clip(x, -self.obs_clip, self.obs_clip)
        x = np.clip((x - self.obs_mean) / self._std, -self.norm_clip, self.norm_clip)
        for w, b in self.layers:
            x = self._act(np.dot(x, w.T) + b)
        mu = np.dot(x, self.mu_weight.T) + self.mu_bias
        out = np.clip(mu, -self.action_clip, self.action_clip).astype(np.float32)
        return out[0] if single else out

    __call__ = act
