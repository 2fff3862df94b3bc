"""Hostile policy files (issue 18.15): every size is checked before it is read or inflated."""

import io
import zipfile

import numpy as np
import pytest

from dofbot_rl.sim2real import npz_policy as N
from dofbot_rl.sim2real.npz_policy import NumpyPolicy, PolicyFileError


def _arrays(path):
    with np.load(str(path)) as data:
        return {k: data[k] for k in data.files}


def _rewrite(good, tmp_path, name="bad.npz", **changes):
    arrays = _arrays(good)
    arrays.update(changes)
    path = tmp_path / name
    np.savez(str(path), **arrays)
    return path


def test_a_good_file_loads_and_matches_np_load(random_policy_npz):
    path = random_policy_npz
    ours, theirs = N.read_npz(path), _arrays(path)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and np.array_equal(ours[key], theirs[key])
    assert NumpyPolicy.from_npz(path).num_actions == 6


def test_huge_layer_count_is_refused_before_reading(random_policy_npz, tmp_path):
    path = _rewrite(random_policy_npz, tmp_path, num_layers=np.int64(10 ** 8))
    with pytest.raises(PolicyFileError, match="num_layers is 100000000"):
        NumpyPolicy.from_npz(path)


def test_compression_bomb_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.npz"
    header = io.BytesIO()
    n = 40 * 1024 * 1024 // 4
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
    with zipfile.ZipFile(str(path), "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("obs_mean.npy", "w", force_zip64=True) as fh:
            fh.write(header.getvalue())
            zero = bytes(1024 * 1024)
            for _ in range(40):
                fh.write(zero)
    assert path.stat().st_size < 200 * 1024  # 40 MB of zeros in a small file
    with pytest.raises(PolicyFileError, match="would inflate to"):
        NumpyPolicy.from_npz(path)


def test_header_claiming_more_than_the_entry_holds_is_refused(tmp_path):
    path = tmp_path / "liar.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 9,)})
    with zipfile.ZipFile(str(path), "w") as zf:
        zf.writestr("obs_mean.npy", header.getvalue() + bytes(64))
    with pytest.raises(PolicyFileError, match="claims shape"):
        NumpyPolicy.from_npz(path)


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickle.npz"
    np.savez(str(path), format=np.array("dofbot-rl-policy"), obs_mean=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PolicyFileError, match="Python objects"):
        NumpyPolicy.from_npz(path)


@pytest.mark.parametrize("key,value,match", [
    ("layer0_weight", "nan", "layer0_weight holds NaN"),
    ("mu_bias", "inf", "mu_bias holds NaN or infinite"),
    ("obs_var", "nan", "obs_var holds NaN"),
    ("control_rate_hz", np.float32("inf"), "control_rate_hz is inf"),
    ("control_rate_hz", np.float32("nan"), "control_rate_hz is nan"),
    ("control_rate_hz", np.float32(1e6), "control_rate_hz is 1000000"),
    ("control_rate_hz", np.float32(0), "control_rate_hz is 0"),
    ("dof_vel_scale", np.float32("nan"), "dof_vel_scale"),
    ("obs_clip", np.float32("inf"), "obs_clip"),
    ("dof_lower", np.array([np.nan] * 6, np.float32), "dof_lower must be finite"),
])
def test_non_finite_weights_and_rates_are_refused(random_policy_npz, tmp_path, key, value, match):
    arrays = _arrays(random_policy_npz)
    if isinstance(value, str):
        bad = arrays[key].copy()
        bad.flat[0] = float(value)
        value = bad
    path = _rewrite(random_policy_npz, tmp_path, **{key: value})
    with pytest.raises(PolicyFileError, match=match):
        NumpyPolicy.from_npz(path)


def test_too_wide_layer_is_refused(random_policy_npz, tmp_path):
    f32 = np.float32
    path = _rewrite(random_policy_npz, tmp_path, layer0_weight=np.zeros((N.MAX_WIDTH + 1, 29), f32),
                    layer0_bias=np.zeros(N.MAX_WIDTH + 1, f32), mu_weight=np.zeros((6, N.MAX_WIDTH + 1), f32))
    with pytest.raises(PolicyFileError, match="wider than"):
        NumpyPolicy.from_npz(path)
