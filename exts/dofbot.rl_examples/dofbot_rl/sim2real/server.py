"""The Dofbot side of the sim-to-real link: the server's command line.

Runs on the Dofbot's Jetson Nano: standard library only, Python 3.6 compatible.
``python3 dofbot_server.pyz --arm armlib`` (see :mod:`dofbot_rl.sim2real.bundle`),
``dofbot-rl serve --arm armlib`` or ``python3 -m dofbot_rl.sim2real.server``; ``--help``
lists the options. The server is four parts, innermost first:

* :mod:`.safety` - :class:`~dofbot_rl.sim2real.safety.ArmController`, the one thread that
  talks to the arm: clamps every target to the safe limits, limits step and rate, holds
  (or releases torque) on link loss;
* :mod:`.policy_mode` - :class:`~dofbot_rl.sim2real.policy_mode.PolicyRunner`, the exported
  policy (``--policy policy.npz``, numpy) driving the arm through that layer;
* :mod:`.tcp_server` - :class:`~dofbot_rl.sim2real.tcp_server.Sim2RealServer`, protocol v1
  or legacy, one controlling client;
* this module - the options, start-up checks and signal handling.
"""

import logging
import signal
import sys
import threading

from . import protocol as P
from .cmdline import ArgumentParser, configure_logging, float_list, number
from .policy_mode import POLICY_MOVE_MS
from .safety import MAX_RATE_HZ, MAX_SERVO_MOVE_MS, MAX_STEP_DEG
from .tcp_server import Sim2RealServer

_log = logging.getLogger(__name__)


def build_arg_parser():
    """The ``serve`` command line (also used by ``dofbot-rl serve``); bad values exit 2 with one line."""
    p = ArgumentParser(
        prog="dofbot-rl serve",
        description="Dofbot sim-to-real server: receives joint targets (or, with --policy, goals for the "
                    "policy it runs itself) over TCP and drives the arm safely (clamped to the safe limits, "
                    "rate and step limited, holds on link loss).")
    p.add_argument("--arm", choices=("sim", "armlib"), default="sim",
                   help="arm driver: 'armlib' = the real Dofbot through Yahboom's Arm_Lib (on the Jetson), "
                        "'sim' = a simulated servo bus (dry runs)")
    p.add_argument("--host", default="0.0.0.0", help="interface to bind (default all IPv4 interfaces)")
    p.add_argument("--port", type=number(int, 0, 65535), default=P.DEFAULT_PORT,
                   help="TCP port, 0 picks a free one (default %(default)s)")
    p.add_argument("--protocol", choices=("v1", "legacy"), default="v1",
                   help="'v1' (framed, acknowledged, optional token) or 'legacy' (the reference's "
                        "24-byte frames, no replies)")
    p.add_argument("--token-file", default=None,
                   help="file holding a shared token; clients must prove it (HMAC-SHA256), v1 only. It must be "
                        "a regular file readable only by its owner (chmod 600)")
    p.add_argument("--allow-readable-token", action="store_true",
                   help="accept a token file that group or others can read")
    p.add_argument("--heartbeat-ms", type=number(int, 10, 0xFFFF), default=200,
                   help="hold (or release) when the controlling client is silent this long (ms, 10-65535)")
    p.add_argument("--on-timeout", choices=("hold", "release"), default="hold",
                   help="on link loss: hold the last safe pose, or release servo torque")
    p.add_argument("--max-step-deg", type=number(float, 0.0, MAX_STEP_DEG, low_open=True), default=5.0,
                   help="largest joint change between two servo writes (deg, in (0, %g])" % MAX_STEP_DEG)
    p.add_argument("--max-rate-hz", type=number(float, 0.0, MAX_RATE_HZ, low_open=True), default=60.0,
                   help="most servo writes per second (Hz, in (0, %g])" % MAX_RATE_HZ)
    p.add_argument("--readback-hz", type=number(float, 0.0, MAX_RATE_HZ), default=None,
                   help="read-back rate per servo (Hz), 0 disables read-back (default 20, 30 with --policy)")
    p.add_argument("--policy", default=None,
                   help="policy mode: run this exported policy (.npz from `dofbot-rl export format=npz`, needs "
                        "numpy) at its control rate toward --goal or a client's GOAL; clients' COMMANDs are "
                        "refused unless they take over (MODE direct)")
    p.add_argument("--goal", type=float_list(3, "--goal"), default=None,
                   help="with --policy: first goal x,y,z (m, robot base frame), e.g. 0.17,0.15,0.25 "
                        "(default: none, the arm stays still until a client sends one)")
    p.add_argument("--goal-quat", type=float_list(4, "--goal-quat"), default=None,
                   help="with --goal: goal orientation w,x,y,z (default identity)")
    p.add_argument("--move-ms", type=number(int, 0, MAX_SERVO_MOVE_MS), default=POLICY_MOVE_MS,
                   help="with --policy: servo move time sent with the policy's targets (ms)")
    p.add_argument("--log-file", default=None, help="log to this file (rotated at 5 MB) instead of stderr")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--sim-read-latency-ms", type=number(float, 0.0, 1000.0), default=3.0,
                   help="--arm sim: time one servo read takes (ms)")
    p.add_argument("--sim-read-failure", type=number(float, 0.0, 1.0), default=0.02,
                   help="--arm sim: probability that a servo read fails")
    p.add_argument("--seed", type=int, default=0, help="--arm sim: seed of the read-failure RNG")
    return p


def load_policy(path):
    """An :class:`~dofbot_rl.sim2real.onboard.OnboardController` for the ``.npz`` policy at ``path``.

    numpy is imported here, so the server itself stays standard-library only.

    Raises:
        ImportError: numpy is missing.
        ValueError: the file is missing, unreadable or not a 29 -> 6 dofbot-rl policy
            (``npz_policy.PolicyFileError``).
    """
    from .npz_policy import NumpyPolicy
    from .onboard import OnboardController

    onboard = OnboardController(NumpyPolicy.from_npz(path))
    _log.info("policy %s: %d -> %d, %s, %.0f Hz", path, onboard.policy.num_observations, onboard.policy.num_actions,
              onboard.policy.activation, onboard.control_rate_hz)
    return onboard


def main(argv=None):
    """Run the server until SIGINT / SIGTERM. Returns the process exit status.

    Args:
        argv: command-line arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 after a clean stop, 1 when the server cannot start (bad token file, port in use,
        ``Arm_Lib`` missing, a bad ``--policy`` file or no numpy for it), with one log line
        saying why; bad arguments exit with 2 and one line on stderr.
    """
    from .arms import make_arm

    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.policy is None and (args.goal is not None or args.goal_quat is not None):
        parser.error("--goal and --goal-quat need --policy")
    if args.goal_quat is not None and args.goal is None:
        parser.error("--goal-quat needs --goal")
    readback_hz = args.readback_hz if args.readback_hz is not None else (30.0 if args.policy else 20.0)
    handler = configure_logging(args.log_file, args.log_level)
    try:
        token = None
        if args.token_file:
            token = P.read_token_file(args.token_file, allow_readable=args.allow_readable_token)
        elif args.protocol == "v1" and args.host not in ("127.0.0.1", "localhost", "::1"):
            _log.warning("no --token-file: anyone who can reach %s:%d can move the arm", args.host, args.port)
        onboard = load_policy(args.policy) if args.policy else None
        arm = make_arm(args.arm, args.sim_read_latency_ms, args.sim_read_failure, args.seed)
        server = Sim2RealServer(arm, host=args.host, port=args.port, protocol=args.protocol, token=token,
                                heartbeat_ms=args.heartbeat_ms, on_timeout=args.on_timeout,
                                max_step_deg=args.max_step_deg, max_rate_hz=args.max_rate_hz,
                                readback_hz=readback_hz, policy=onboard, goal=args.goal, goal_quat=args.goal_quat,
                                policy_move_ms=args.move_ms)
    except (ValueError, ImportError, OSError) as exc:
        where = " (%s:%d)" % (args.host, args.port) if isinstance(exc, OSError) else ""
        _log.error("cannot start%s: %s", where, " ".join(str(exc).split()))  # one line, even for multi-line errors
        logging.getLogger().removeHandler(handler)
        return 1
    stop = threading.Event()

    def _on_signal(signum, _frame):
        _log.info("signal %d: stopping", signum)
        stop.set()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, _on_signal)
    try:
        server.serve_forever(stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        arm.close()
        logging.getLogger().removeHandler(handler)
        handler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
