"""Policy export (ONNX, TorchScript, npz) equals the rl_games player; the on-robot controller equals the task."""

import json
import math
import threading
import time

import numpy as np
import pytest
import torch

from _tiny_policy import tiny_checkpoint
from dofbot_rl import cli, robot
from dofbot_rl.rl import export as ex
from dofbot_rl.rl.checkpoints import CheckpointError, load_checkpoint
from dofbot_rl.rl.policy import DeterministicPolicy, load_policy, network_settings, spec_from_checkpoint
from dofbot_rl.sim2real import onboard as ob
from dofbot_rl.sim2real.npz_policy import NumpyPolicy, PolicyFileError
from dofbot_rl.tasks import make_task
from dofbot_rl.tasks import reacher_math as rm


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny_runs"))


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    cfg, checkpoint = trained
    return ex.export(checkpoint, "all", tmp_path_factory.mktemp("export"), cfg)


# ----------------------------------------------------------------------------------
# Export and verification
# ----------------------------------------------------------------------------------
def test_export_all_formats_and_verify(trained, exported):
    cfg, checkpoint = trained
    assert set(exported.files) == {"onnx", "torchscript", "npz"}
    for path in list(exported.files.values()) + [exported.sidecar]:
        assert path.is_file() and path.stat().st_size > 0
    verdict = ex.verify(exported, cfg, samples=10000)
    assert verdict.task_samples >= 10000
    assert set(verdict.max_abs_diff) == {"torch", "onnx", "torchscript", "npz"}
    assert verdict.passed and verdict.worst <= 1e-5, verdict.max_abs_diff
    line = verdict.summary_line()
    assert line.startswith("max_abs_diff=") and f"samples={verdict.samples}" in line

    meta = json.loads(exported.sidecar.read_text())
    assert meta["checkpoint"]["sha256"] == ex.file_sha256(checkpoint)
    assert meta["verification"]["passed"] is True and meta["verification"]["samples"] == verdict.samples
    assert [e["name"] for e in meta["observation"]] == rm.OBSERVATION_NAMES
    assert [e["joint"] for e in meta["action"]] == list(robot.JOINT_NAMES)
    assert meta["control_rate_hz"] == pytest.approx(60.0)
    assert meta["policy"]["norm_eps"] == pytest.approx(1e-5) and meta["policy"]["hidden_units"] == [64, 64]
    assert meta["training_config"]["train"]["params"]["network"]["mlp"]["activation"] == "elu"
    assert meta["training_config_source"].endswith("config.yaml")
    for name, info in meta["files"].items():
        assert info["sha256"] == ex.file_sha256(exported.files[name])


def test_onnxruntime_runs_the_onnx_file(exported):
    import onnx
    import onnxruntime

    model = onnx.load(str(exported.files["onnx"]))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == ex.ONNX_OPSET
    session = onnxruntime.InferenceSession(str(exported.files["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["obs"] and [o.name for o in session.get_outputs()] == ["actions"]
    module = DeterministicPolicy(exported.spec)
    for batch in (1, 7):
        obs = np.random.default_rng(batch).uniform(-6, 6, (batch, 29)).astype(np.float32)
        out = session.run(["actions"], {"obs": obs})[0]
        assert out.shape == (batch, 6) and out.dtype == np.float32
        assert np.all(np.abs(out) <= 1.0)
        with torch.no_grad():
            np.testing.assert_allclose(out, module(torch.from_numpy(obs)).numpy(), atol=1e-5)


def test_numpy_policy_equals_torch_module(exported):
    policy = NumpyPolicy.from_npz(exported.files["npz"])
    module = torch.jit.load(str(exported.files["torchscript"]))
    obs = np.random.default_rng(0).uniform(-8, 8, (2048, 29)).astype(np.float32)  # also beyond the clamps
    with torch.no_grad():
        expected = module(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5, rtol=0)
    single = policy.act(obs[3])
    assert single.shape == (6,) and np.allclose(single, expected[3], atol=1e-5)
    assert policy.meta["control_rate_hz"] == pytest.approx(60.0)
    assert policy.meta["dof_lower"] == pytest.approx(list(robot.SAFE_LIMITS_LOWER))
    assert policy.meta["observation_names"] == rm.OBSERVATION_NAMES
    with pytest.raises(ValueError, match="observations must be"):
        policy.act(np.zeros(28))
    with pytest.raises(ValueError, match="finite"):
        policy.act(np.full(29, np.nan))


def test_rebuilt_module_matches_rl_games_normaliser_constants(trained):
    """eps and clip come from rl_games' RunningMeanStd; the stats are used as float32 like rl_games does."""
    from rl_games.algos_torch.running_mean_std import RunningMeanStd

    cfg, checkpoint = trained
    state = load_checkpoint(checkpoint)
    rms = RunningMeanStd(29)
    rms.load_state_dict({k.split(".", 1)[1]: v for k, v in state["model"].items() if k.startswith("running_mean_std.")})
    rms.eval()
    spec = spec_from_checkpoint(state)
    x = torch.randn(512, 29) * 3
    x[0, :] = 1000.0  # far outside: both clip to +-5 after normalising
    module = DeterministicPolicy(spec)
    ours = torch.clamp((x - module.obs_mean) / torch.sqrt(module.obs_var + module.norm_eps), -5, 5)
    assert rms.epsilon == spec.norm_eps
    assert torch.equal(ours, rms(x))


def test_export_single_format_and_cli(trained, tmp_path, capsys):
    cfg, checkpoint = trained
    out = tmp_path / "only_npz"
    code = ex.main([f"checkpoint={checkpoint}", "format=npz", f"output={out}", "verify=False",
                    f"train_dir={cfg.train_dir}"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["policy.json", "policy.npz"]
    assert "wrote" in capsys.readouterr().out
    assert load_policy(checkpoint).obs_mean.dtype == torch.float32


def test_cli_fails_loudly_when_verification_fails(trained, tmp_path, monkeypatch, capsys, caplog):
    cfg, checkpoint = trained

    def failing_verify(result, cfg, samples=10000, tolerance=ex.VERIFY_TOLERANCE):
        return ex.VerifyResult(samples=samples, task_samples=samples, tolerance=tolerance,
                               max_abs_diff={"torch": 0.0, "npz": 3e-3})

    monkeypatch.setattr(ex, "verify", failing_verify)
    code = cli.main(["export", f"checkpoint={checkpoint}", "format=npz", f"output={tmp_path}", "samples=64"])
    assert code == 1
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == "max_abs_diff=3.000e-03 samples=64 formats=torch,npz"
    assert "verification FAILED" in caplog.text and "npz (3.000e-03)" in caplog.text


def test_verify_detects_a_tampered_file(trained, tmp_path):
    cfg, checkpoint = trained
    result = ex.export(checkpoint, "npz", tmp_path, cfg)
    with np.load(result.files["npz"]) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["obs_var"] = arrays["obs_var"] * 1.5  # a normaliser that got lost or changed
    with open(result.files["npz"], "wb") as fh:
        np.savez(fh, **arrays)
    verdict = ex.verify(result, cfg, samples=64)
    assert not verdict.passed and verdict.max_abs_diff["npz"] > 1e-3 and verdict.max_abs_diff["torch"] <= 1e-5


# ----------------------------------------------------------------------------------
# Bad inputs: one clear line, exit status 2
# ----------------------------------------------------------------------------------
def _cli_error(args, capsys):
    code = cli.main(["export"] + args)
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_missing_checkpoint(tmp_path, capsys):
    err = _cli_error([f"checkpoint={tmp_path / 'nope.pth'}", "verify=False"], capsys)
    assert "checkpoint not found" in err and "nope.pth" in err


def test_foreign_files(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    assert "not a loadable rl_games checkpoint" in _cli_error([f"checkpoint={junk}", "verify=False"], capsys)
    other = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(3)}, other)
    assert "no 'model' state dict" in _cli_error([f"checkpoint={other}", "verify=False"], capsys)
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"running_mean_std.running_mean": torch.zeros(27, dtype=torch.float64),
                          "running_mean_std.running_var": torch.ones(27, dtype=torch.float64),
                          "a2c_network.mu.weight": torch.zeros(6, 64), "a2c_network.mu.bias": torch.zeros(6)}}, wrong)
    assert "27 observations" in _cli_error([f"checkpoint={wrong}", "verify=False"], capsys)


def test_bad_options(trained, capsys):
    _, checkpoint = trained
    err = _cli_error([f"checkpoint={checkpoint}", "format=tflite"], capsys)
    assert "format=tflite is unknown" in err and "onnx, torchscript, npz or all" in err
    assert "verify=maybe" in _cli_error([f"checkpoint={checkpoint}", "verify=maybe"], capsys)
    assert "samples=0" in _cli_error([f"checkpoint={checkpoint}", "samples=0"], capsys)
    with pytest.raises(ValueError, match="format=onnx2"):
        ex.parse_formats("onnx2")
    assert ex.parse_formats("npz,onnx") == ("onnx", "npz")


def test_unsupported_networks_are_refused():
    assert network_settings({"network": {"mlp": {"activation": "elu"}}}) == "elu"
    with pytest.raises(CheckpointError, match="d2rl"):
        network_settings({"network": {"mlp": {"activation": "elu", "d2rl": True}}})
    with pytest.raises(CheckpointError, match="rnn"):
        network_settings({"network": {"rnn": {"name": "lstm"}, "mlp": {}}})
    with pytest.raises(CheckpointError, match="activation"):
        network_settings({"network": {"mlp": {"activation": "gelu"}}})


def test_npz_reader_errors(tmp_path):
    with pytest.raises(PolicyFileError, match="cannot read"):
        NumpyPolicy.from_npz(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(str(other), a=np.zeros(3))
    with pytest.raises(PolicyFileError, match="not a dofbot-rl policy"):
        NumpyPolicy.from_npz(other)
    partial = tmp_path / "partial.npz"
    np.savez(str(partial), format=np.array("dofbot-rl-policy"), obs_mean=np.zeros(29))
    with pytest.raises(PolicyFileError, match="lack"):
        NumpyPolicy.from_npz(partial)


# ----------------------------------------------------------------------------------
# On-robot controller
# ----------------------------------------------------------------------------------
def test_onboard_scaling_equals_reacher_math():
    rng = np.random.default_rng(1)
    lower = torch.tensor(robot.SAFE_LIMITS_LOWER)
    upper = torch.tensor(robot.SAFE_LIMITS_UPPER)
    q = rng.uniform(-2, 2, (100, 6)).astype(np.float32)
    a = rng.uniform(-1.5, 1.5, (100, 6)).astype(np.float32)
    np.testing.assert_allclose(ob.unscale_dof_pos(q, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER),
                               rm.unscale_dof_pos(torch.from_numpy(q), lower, upper).numpy(), atol=1e-6)
    np.testing.assert_allclose(ob.actions_to_joint_targets(a, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER),
                               rm.actions_to_joint_targets(torch.from_numpy(a), lower, upper).numpy(), atol=1e-6)
    qa, qb = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    np.testing.assert_allclose(ob.quat_mul(qa, ob.quat_conjugate(qb)),
                               rm.quat_mul(torch.from_numpy(qa), rm.quat_conjugate(torch.from_numpy(qb))).numpy(),
                               atol=1e-12)
    angles = rng.uniform(-math.pi, math.pi, 2)
    expected = rm.quat_mul(rm.quat_from_angle_axis(torch.tensor([angles[0]]), torch.tensor([[1.0, 0, 0]])),
                           rm.quat_from_angle_axis(torch.tensor([angles[1]]), torch.tensor([[0, 1.0, 0]])))[0]
    got = ob.quat_mul(ob._axis_quat(0, angles[0]), ob._axis_quat(1, angles[1]))
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-6)


def test_onboard_observation_equals_task_observation(trained):
    """Same joint state, goal and last action -> the same 29 values as the task (ee_rot from FK)."""
    from dofbot_rl.config import load_config

    cfg = load_config(["num_envs=16", "sim_device=cpu"])
    task = make_task(cfg)
    task.reset()
    gen = torch.Generator().manual_seed(3)
    worst_obs = worst_tip = 0.0
    for _ in range(25):
        obs, _, _, _ = task.step(torch.rand(16, 6, generator=gen) * 2 - 1)
        for i in range(16):
            q, qd = task.dof_pos[i].numpy(), task.dof_vel[i].numpy()
            mine = ob.build_observation(q, qd, task.goal_pos_env[i].numpy(), task.goal_rot[i].numpy(),
                                        ob.ee_quaternion(q), task.actions[i].numpy(), robot.SAFE_LIMITS_LOWER,
                                        robot.SAFE_LIMITS_UPPER, cfg.task.env.dof_vel_scale,
                                        cfg.task.env.clip_observations)
            worst_obs = max(worst_obs, float(np.abs(mine - obs[i].numpy()).max()))
            worst_tip = max(worst_tip, float(np.abs(np.array(robot.fingertip_position(q))
                                                     - task.tip_pos_env[i].numpy()).max()))
    assert worst_obs <= 1e-5 and worst_tip <= 1e-5


def test_onboard_controller_step(exported):
    policy = NumpyPolicy.from_npz(exported.files["npz"])
    goal = (0.17, -0.16, 0.22)
    ctrl = ob.OnboardController(policy, goal=goal)
    q0 = [0.1, -0.2, 0.3, 0.05, -0.4, 0.0]
    targets = ctrl.step(q0, 10.0)
    # First tick: zero velocity, zero previous action, identity goal orientation.
    expected_obs = ob.build_observation(q0, np.zeros(6), goal, ob.IDENTITY_QUAT, ob.ee_quaternion(q0), np.zeros(6),
                                        robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER)
    np.testing.assert_array_equal(ctrl.last_observation, expected_obs)
    action = policy.act(expected_obs)
    action[5] = 0.0
    np.testing.assert_allclose(targets, ob.actions_to_joint_targets(action, robot.SAFE_LIMITS_LOWER,
                                                                   robot.SAFE_LIMITS_UPPER), atol=1e-9)
    assert all(lo <= t <= hi for t, lo, hi in zip(targets, robot.SAFE_LIMITS_LOWER, robot.SAFE_LIMITS_UPPER))
    assert targets[5] == pytest.approx(0.0)
    # Next tick: the previous action is in the observation; a failed read keeps the last value.
    q1 = [float("nan"), -0.19, 0.3, 0.05, -0.4, 0.0]
    ctrl.step(q1, 10.0 + 1 / 60)
    np.testing.assert_allclose(ctrl.last_observation[23:29], action, atol=1e-7)
    assert ctrl.joint_positions[0] == pytest.approx(0.1)
    # joint2 moved 0.01 rad in 1/60 s: 0.6 rad/s through the first low-pass step (tau 0.03 s), x 0.2
    alpha = (1 / 60) / (0.03 + 1 / 60)
    assert ctrl.last_observation[7] == pytest.approx(0.2 * 0.6 * alpha, rel=1e-3)
    # No goal: hold where the arm is. Bad inputs: clear errors.
    idle = ob.OnboardController(policy)
    assert idle.step(q0, 0.0) == pytest.approx(q0)
    with pytest.raises(ValueError, match="goal must be 3"):
        ctrl.set_goal((0.1, 0.2))
    with pytest.raises(ValueError, match="read-back must be 6"):
        ctrl.step([0.0] * 5, 11.0)


def test_velocity_estimator_tracks_a_ramp():
    est = ob.VelocityEstimator(6, window_s=0.05, tau_s=0.03)
    v = None
    for k in range(60):
        t = k / 60
        q = np.full(6, 0.5 * t)
        q[1] = math.floor(math.degrees(0.5 * t)) * math.pi / 180  # 1 deg read-back resolution
        v = est.update(q, t)
    assert v[0] == pytest.approx(0.5, rel=1e-3)
    assert v[1] == pytest.approx(0.5, abs=0.2)
    assert np.array_equal(est.update(q, t), v)  # a repeated time stamp changes nothing


def test_policy_loop_drives_the_simulated_arm_through_the_safety_layer(exported):
    from dofbot_rl.sim2real.arms import SimulatedArm
    from dofbot_rl.sim2real.policy_mode import PolicyRunner
    from dofbot_rl.sim2real.safety import ArmController

    arm = SimulatedArm(read_latency_ms=1.0, read_failure_prob=0.1, seed=1)
    arm_ctrl = ArmController(arm, max_step_deg=5.0, max_rate_hz=60.0, readback_hz=30.0)
    onboard = ob.OnboardController(NumpyPolicy.from_npz(exported.files["npz"]))
    stop = threading.Event()
    thread = threading.Thread(target=arm_ctrl.run, args=(stop,), daemon=True)
    thread.start()
    t_end = time.monotonic() + 0.5
    try:
        ticks = PolicyRunner(onboard, arm_ctrl, move_ms=50, goal=(0.15, 0.15, 0.3)).run(stop, on_tick=lambda now: now >= t_end)
    finally:
        stop.set()
        thread.join(5.0)
    assert 15 <= ticks <= 40  # ~60 Hz for 0.5 s
    assert arm_ctrl.num_writes > 5 and arm.num_rejected == 0
    steps = [max(abs(a - b) for a, b in zip(w1.servo_deg, w0.servo_deg)) for w0, w1 in zip(list(arm.writes)[1:],
                                                                                             list(arm.writes)[2:])]
    assert max(steps) <= 5.0 * 2 + 1e-6  # the server's step limit (gripper servo maps 2 deg per joint deg)
    assert onboard.fingertip is not None


# ----------------------------------------------------------------------------------
# Issue 18: items 1, 2, 7 (policy.json, rl_games prints), 18
# ----------------------------------------------------------------------------------
def test_onnx_without_the_extra_is_one_line_and_writes_nothing(trained, tmp_path, monkeypatch, capsys):
    import importlib.util

    _, checkpoint = trained
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    out = tmp_path / "export"
    err = _cli_error([f"checkpoint={checkpoint}", "format=onnx", f"output={out}"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs the onnx package" in lines[0] and "'.[export]'" in lines[0], err
    assert not out.exists()


def test_unwritable_output_is_one_line(trained, tmp_path, capsys):
    _, checkpoint = trained
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for output in (a_file / "sub", "/proc/dofbot_rl_export"):
        err = _cli_error([f"checkpoint={checkpoint}", "format=npz", f"output={output}", "verify=False"], capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "cannot be created" in lines[0] and str(output) in lines[0], err


def test_verify_with_a_network_the_config_does_not_ask_for_writes_nothing(trained, tmp_path, capsys):
    """issue 18 item 3 (validate before writing): the verifying player is built from the config, so a
    checkpoint whose MLP differs from it is refused before any file is written, not after."""
    _, checkpoint = trained
    out = tmp_path / "export"
    err = _cli_error([f"checkpoint={checkpoint}", "format=npz", f"output={out}", "samples=64",
                      "train.params.network.mlp.units=[128,128]"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "the config asks for [128, 128]" in lines[0], err
    assert not out.exists()


def test_separate_exports_into_one_folder_add_up_in_policy_json(trained, tmp_path):
    cfg, checkpoint = trained
    ex.export(checkpoint, "npz", tmp_path, cfg)
    result = ex.export(checkpoint, "torchscript", tmp_path, cfg)
    meta = json.loads(result.sidecar.read_text())
    assert set(meta["files"]) == {"npz", "torchscript"}
    (tmp_path / "policy.npz").write_bytes(b"changed")  # a file that no longer matches is not listed
    meta = json.loads(ex.export(checkpoint, "torchscript", tmp_path, cfg).sidecar.read_text())
    assert set(meta["files"]) == {"torchscript"}


def test_sidecar_holds_only_the_training_keys_the_policy_needs(trained, exported):
    import os

    meta = json.loads(exported.sidecar.read_text())
    training = meta["training_config"]
    assert set(training) == {"task", "train"} and set(training["train"]["params"]) == {"network"}
    assert "num_envs" not in training["task"]["env"] and "teleop" not in training["task"]
    text = exported.sidecar.read_text()
    assert os.environ.get("PATH", "@none@") not in text and '"train_dir"' not in text


def test_export_stdout_has_only_its_own_lines(trained, tmp_path, capsys):
    cfg, checkpoint = trained
    code = cli.main(["export", f"checkpoint={checkpoint}", "format=npz", f"output={tmp_path}", "samples=64",
                     "num_envs=8"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert all(line.startswith(("wrote ", "max_abs_diff=")) for line in lines), lines  # no rl_games prints
