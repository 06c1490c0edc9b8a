"""The update rules and learning-rate schedules of helpers/core/optim.py.

Each rule takes the steps of torch.optim, and each schedule gives the rates
of torch.optim.lr_scheduler (or its closed form), in float64 to a relative
1e-12; "cyclical" is the report's triangle. Then the rules do
what they are for (Adam converges, momentum beats SGD where the problem is
ill-conditioned), and bad settings are refused with a ConfigError.
"""

import math

import numpy as np
import pytest

from helpers.core import optim
from helpers.core.data import Split
from helpers.errors import ConfigError

SHAPES = {"W1": (6, 5), "b1": (6, 1), "gamma1": (6, 1), "beta1": (6, 1), "W2": (3, 6), "b2": (3, 1)}
TORCH_RULES = [
    pytest.param("sgd", {}, dict(), id="sgd"),
    pytest.param("momentum", {"momentum": 0.9}, dict(momentum=0.9), id="momentum"),
    pytest.param("momentum", {"momentum": 0.5}, dict(momentum=0.5), id="momentum-0.5"),
    pytest.param("nesterov", {"momentum": 0.9}, dict(momentum=0.9, nesterov=True), id="nesterov"),
    pytest.param("adam", {}, dict(), id="adam"),
    pytest.param(
        "adam", {"beta1": 0.5, "beta2": 0.99, "eps": 1e-3}, dict(betas=(0.5, 0.99), eps=1e-3), id="adam-betas"
    ),
    pytest.param("rmsprop", {}, dict(), id="rmsprop"),
    # A large eps, so that a misplaced eps (inside the square root, or added to v) would show.
    pytest.param("rmsprop", {"rho": 0.9, "eps": 1e-1}, dict(alpha=0.9, eps=1e-1), id="rmsprop-0.9"),
]


def assert_same(a, b, rel=1e-12, what=""):
    """max |a - b| <= rel * max |b|: a relative difference over the whole array."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.max(np.abs(a - b)) <= rel * np.max(np.abs(b)), what


def random_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def torch_optimizer(rule, tensors, eta, settings):
    import torch

    if rule == "adam":
        return torch.optim.Adam(tensors, lr=eta, **settings)
    if rule == "rmsprop":
        return torch.optim.RMSprop(tensors, lr=eta, **settings)
    return torch.optim.SGD(tensors, lr=eta, **settings)


@pytest.mark.parametrize("rule, ours, theirs", TORCH_RULES)
def test_each_rule_takes_the_steps_of_torch_optim(rule, ours, theirs):
    """20 steps with the same random gradients and a changing eta (a cyclical schedule)."""
    import torch

    params = random_params()
    tensors = {name: torch.tensor(p, dtype=torch.float64, requires_grad=True) for name, p in params.items()}
    state = optim.init_state(rule, params)
    opt = torch_optimizer(rule, list(tensors.values()), 0.1, theirs)
    rng = np.random.default_rng(1)
    for t in range(20):
        eta = optim.cyclical_eta(t, 1e-3, 1e-1, n_s=5)
        grads = {name: rng.standard_normal(p.shape) for name, p in params.items()}
        optim.update(rule, params, grads, state, eta, **ours)
        for group in opt.param_groups:
            group["lr"] = eta
        for name, tensor in tensors.items():
            tensor.grad = torch.tensor(grads[name])
        opt.step()

    for name, tensor in tensors.items():
        assert_same(params[name], tensor.detach().numpy(), what=name)
        # The steps moved every parameter: the comparison above is not of the starting values.
        assert not np.allclose(params[name], random_params()[name], rtol=1e-3, atol=0)
        torch_state = opt.state[tensor]
        if rule in ("momentum", "nesterov"):
            assert_same(state["velocity"][name], torch_state["momentum_buffer"].numpy(), what=name)
        if rule == "adam":
            assert_same(state["m"][name], torch_state["exp_avg"].numpy(), what=name)
            assert_same(state["v"][name], torch_state["exp_avg_sq"].numpy(), what=name)
            assert state["t"] == int(torch_state["step"]) == 20
        if rule == "rmsprop":
            assert_same(state["v"][name], torch_state["square_avg"].numpy(), what=name)


@pytest.mark.parametrize("rule", optim.UPDATE_RULES)
def test_the_state_is_zero_and_float32_stays_float32(rule):
    params = random_params(dtype=np.float32)
    state = optim.init_state(rule, params)
    assert set(state) == set(optim.STATE_KEYS[rule])
    for key in ("velocity", "m", "v"):
        for name, array in state.get(key, {}).items():
            assert array.dtype == np.float32 and array.shape == SHAPES[name] and not array.any()
    grads = random_params(seed=1, dtype=np.float32)
    optim.update(rule, params, grads, state, 0.01)
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(a.dtype == np.float32 for key in ("velocity", "m", "v") for a in state.get(key, {}).values())


@pytest.mark.parametrize("n_s", [1, 2, 7, 50, 2250])
def test_cyclical_is_the_triangle_of_the_report(n_s):
    eta_min, eta_max = 1e-5, 1e-1
    for t in range(5 * n_s):
        phase = t % (2 * n_s)  # 0 .. n_s climbing, n_s .. 2 n_s falling
        expected = eta_min + min(phase, 2 * n_s - phase) / n_s * (eta_max - eta_min)
        assert optim.cyclical_eta(t, eta_min, eta_max, n_s) == pytest.approx(expected, rel=1e-14)
        assert optim.learning_rate("cyclical", t, 5 * n_s, eta_min, eta_max, n_s) == optim.cyclical_eta(
            t, eta_min, eta_max, n_s)


def torch_rates(make_scheduler, total_steps, eta_max):
    """The learning rate torch uses at each of total_steps steps, starting from lr = eta_max."""
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=eta_max)
    scheduler = make_scheduler(opt)
    rates = []
    for _ in range(total_steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(rates)


def our_rates(schedule, total_steps, eta_min, eta_max, n_s=10, **settings):
    optim.check_schedule(schedule, total_steps, eta_min, eta_max, n_s, **settings)
    steps = range(total_steps)
    return np.array([optim.learning_rate(schedule, t, total_steps, eta_min, eta_max, n_s, **settings) for t in steps])


@pytest.mark.parametrize("total_steps", [1, 10, 999])
def test_cosine_is_torch_cosine_annealing(total_steps):
    import torch

    rates = our_rates("cosine", total_steps, 1e-5, 1e-1)
    def cosine(opt):
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=1e-5)

    expected = torch_rates(cosine, total_steps, 1e-1)
    assert_same(rates, expected)
    assert rates[0] == 1e-1 and np.all(np.diff(rates) < 0)


@pytest.mark.parametrize("total_steps, warmup", [(100, 10), (50, 1), (20, 19)])
def test_cosine_with_warmup_is_torch_linear_then_cosine(total_steps, warmup):
    import torch

    eta_min, eta_max = 1e-4, 1e-1

    def warm_then_cosine(opt):
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=eta_min / eta_max, total_iters=warmup)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps - warmup, eta_min=eta_min)
        return torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[warmup])

    rates = our_rates("cosine", total_steps, eta_min, eta_max, warmup=warmup)
    assert_same(rates, torch_rates(warm_then_cosine, total_steps, eta_max))
    assert rates[0] == eta_min and rates[warmup] == eta_max
    assert np.all(np.diff(rates[: warmup + 1]) > 0) and np.all(np.diff(rates[warmup:]) < 0)


@pytest.mark.parametrize("gamma, step_size", [(0.1, 7), (0.5, 1), (1.0, 3)])
def test_step_is_torch_step_lr_while_the_floor_does_not_bind(gamma, step_size):
    import torch

    total_steps = 30
    rates = our_rates("step", total_steps, 1e-12, 1e-1, gamma=gamma, step_size=step_size)
    expected = torch_rates(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size, gamma), total_steps, 1e-1)
    assert_same(rates, expected)


def test_step_is_floored_at_eta_min_and_steps_every_n_s_by_default():
    rates = our_rates("step", 50, 1e-3, 1e-1, n_s=10, gamma=0.1)
    expected = np.repeat([1e-1, 1e-2, 1e-3, 1e-3, 1e-3], 10)
    assert_same(rates, expected)
    assert rates.min() == 1e-3


@pytest.mark.parametrize("schedule", optim.SCHEDULES)
def test_every_schedule_stays_between_eta_min_and_eta_max(schedule):
    settings = {"warmup": 5} if schedule == "cosine" else {}
    rates = our_rates(schedule, 200, 1e-4, 1e-1, n_s=17, gamma=0.3, **settings)
    assert rates.min() >= 1e-4 and rates.max() <= 1e-1
    assert rates.max() == pytest.approx(1e-1)


def quadratic(diagonal, seed=0):
    """f(x) = 1/2 (x - c)^T A (x - c) with A = diag(diagonal): its value and gradient at params["x"]."""
    c = np.random.default_rng(seed).standard_normal(len(diagonal))
    A = np.asarray(diagonal, np.float64)

    def value_and_grad(params):
        r = params["x"] - c
        return 0.5 * np.sum(A * r * r), {"x": A * r}

    return value_and_grad, c


def minimize(rule, value_and_grad, steps, eta, schedule=None, **settings):
    params = {"x": np.zeros(2)}
    state = optim.init_state(rule, params)
    for t in range(steps):
        loss, grads = value_and_grad(params)
        rate = eta if schedule is None else optim.learning_rate(schedule, t, steps, eta / 1000, eta, n_s=None)
        optim.update(rule, params, grads, state, rate, **settings)
    return value_and_grad(params)[0], params["x"]


def test_adam_converges_on_a_small_quadratic():
    value_and_grad, c = quadratic([1.0, 10.0])
    start = value_and_grad({"x": np.zeros(2)})[0]
    loss, x = minimize("adam", value_and_grad, 2000, 0.05, schedule="cosine")
    assert loss < 1e-10 * start
    assert np.allclose(x, c, atol=1e-5)


@pytest.mark.parametrize("rule", ["momentum", "nesterov"])
def test_momentum_beats_plain_sgd_on_an_ill_conditioned_quadratic(rule):
    """Condition number 100: with the same eta = 1 / L, SGD crawls along the flat direction."""
    value_and_grad, _ = quadratic([1.0, 100.0])
    start = value_and_grad({"x": np.zeros(2)})[0]
    sgd_loss, _ = minimize("sgd", value_and_grad, 150, 0.01)
    momentum_loss, _ = minimize(rule, value_and_grad, 150, 0.01, momentum=0.9)
    assert sgd_loss > 1e-4 * start  # still on its way ...
    assert momentum_loss < 1e-4 * sgd_loss  # ... where momentum has nearly arrived


def test_rmsprop_moves_large_and_small_gradients_at_the_same_pace():
    """Its step is g / rms(g): gradients 1e6 times apart move their weights alike."""
    g = {"x": np.array([1e-3, 1e3])}
    params = {"x": np.zeros(2)}
    state = optim.init_state("rmsprop", params)
    optim.update("rmsprop", params, g, state, 0.01)
    # From v = 0 the first step is eta g / (sqrt(1 - rho) |g| + eps), about 10 eta: not SGD's eta g.
    assert_same(-params["x"], [0.1, 0.1], rel=1e-4)
    for _ in range(49):
        optim.update("rmsprop", params, g, state, 0.01)
    assert_same(params["x"][0], params["x"][1], rel=1e-4)
    sgd = {"x": np.zeros(2)}
    optim.update("sgd", sgd, g, {}, 0.01)
    assert sgd["x"][1] / sgd["x"][0] == pytest.approx(1e6)


def test_a_short_training_run_with_rmsprop_lowers_the_cost():
    """End to end: TrainConfig(optimizer="rmsprop") through train(), on separable Gaussian clusters."""
    from helpers.core.config import TrainConfig
    from helpers.core.training import train

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4, 20)) * 2

    def clusters(n):
        y = rng.integers(0, 4, n)
        return Split((centers[y] + rng.standard_normal((n, 20))).astype(np.float32), y)

    config = TrainConfig(hidden=(16, 16), n_batch=20, n_s=50, cycles=1, evals_per_cycle=4,
                         optimizer="rmsprop", eta_max=0.003)
    result = train(config, clusters(1000), clusters(200), progress=False)
    costs = result.history["train_cost"]
    assert costs[-1] < 0.5 * costs[0] and np.all(np.isfinite(costs))
    assert result.history["val_accuracy"][-1] > 0.9


@pytest.mark.parametrize(
    "rule, settings, match",
    [
        ("adamw", {}, "Unknown update rule 'adamw'; choose one of sgd, momentum, nesterov, adam, rmsprop\\.$"),
        ("sgd", {"eta": 0.0}, "eta must be a finite number > 0, got 0.0"),
        ("sgd", {"eta": math.nan}, "eta must be a finite number > 0, got nan"),
        ("adam", {"eta": math.inf}, "eta must be a finite number > 0, got inf"),
        ("momentum", {"momentum": 0.0}, r"momentum must be in \(0, 1\).*use the 'sgd' rule"),
        ("nesterov", {"momentum": 1.0}, r"momentum must be in \(0, 1\) for the 'nesterov' rule, got 1.0"),
        ("momentum", {"momentum": math.nan}, "momentum must be in"),
        ("adam", {"beta1": 1.0}, r"beta1 must be in \[0, 1\) for Adam, got 1.0"),
        ("adam", {"beta2": -0.1}, r"beta2 must be in \[0, 1\) for Adam, got -0.1"),
        ("adam", {"eps": 0.0}, "eps must be > 0 for Adam"),
        ("rmsprop", {"rho": 1.0}, r"rho must be in \[0, 1\) for RMSprop, got 1.0"),
        ("rmsprop", {"rho": math.nan}, "rho must be in"),
        ("rmsprop", {"eps": -1e-8}, "eps must be > 0 for RMSprop"),
    ],
)
def test_bad_update_settings_are_refused_and_change_nothing(rule, settings, match):
    params = random_params()
    before = {name: p.copy() for name, p in params.items()}
    state = optim.init_state(rule, params) if rule in optim.UPDATE_RULES else {}
    settings = {"eta": 0.1, **settings}
    with pytest.raises(ConfigError, match=match):
        optim.update(rule, params, random_params(seed=1), state, **settings)
    for name in params:
        assert np.array_equal(params[name], before[name])
    assert all(not a.any() for key in ("velocity", "m", "v") for a in state.get(key, {}).values())
    assert state.get("t", 0) == 0


def test_a_state_made_for_another_rule_is_refused():
    params = random_params()
    with pytest.raises(ConfigError, match=r"not made for the 'adam' rule; make it with init_state\('adam', params\)"):
        optim.update("adam", params, random_params(seed=1), optim.init_state("momentum", params), 0.1)
    with pytest.raises(ConfigError, match=r"not made for the 'rmsprop' rule"):
        optim.update("rmsprop", params, random_params(seed=1), optim.init_state("adam", params), 0.1)
    with pytest.raises(ConfigError, match="Unknown update rule 'Adam'"):
        optim.init_state("Adam", params)


@pytest.mark.parametrize(
    "schedule, settings, match",
    [
        ("triangular", {}, "Unknown learning-rate schedule 'triangular'; choose one of cyclical, step, cosine"),
        ("cosine", {"total_steps": 0}, "total_steps must be a whole number >= 1, got 0"),
        ("cosine", {"total_steps": 2.5}, "total_steps must be a whole number >= 1, got 2.5"),
        ("cyclical", {"eta_min": 0.0}, "Need 0 < eta_min <= eta_max"),
        ("step", {"eta_min": 0.2}, "Need 0 < eta_min <= eta_max .*eta_min=0.2, eta_max=0.1"),
        ("cosine", {"eta_max": math.inf}, "Need 0 < eta_min <= eta_max"),
        ("cyclical", {"n_s": 0}, "n_s must be a whole number >= 1, got 0"),
        ("step", {"n_s": None}, "n_s must be a whole number >= 1, got None"),
        ("step", {"gamma": 0.0}, r"gamma .* must be in \(0, 1\], got 0.0"),
        ("step", {"gamma": 2.0}, r"gamma .* must be in \(0, 1\], got 2.0"),
        ("step", {"step_size": 0}, "step_size must be a whole number >= 1"),
        ("cyclical", {"warmup": 10}, "warmup is only for the cosine schedule, not 'cyclical'"),
        ("cosine", {"warmup": 100}, r"warmup must be a whole number of steps in 0 ... total_steps - 1 = 99, got 100"),
        ("cosine", {"warmup": -1}, "warmup must be a whole number of steps"),
    ],
)
def test_bad_schedules_are_refused(schedule, settings, match):
    arguments = {"total_steps": 100, "eta_min": 1e-5, "eta_max": 1e-1, "n_s": 10, **settings}
    with pytest.raises(ConfigError, match=match):
        optim.check_schedule(schedule, **arguments)


def test_learning_rate_refuses_an_unknown_schedule_and_a_step_outside_it():
    with pytest.raises(ConfigError, match="Unknown learning-rate schedule 'linear'"):
        optim.learning_rate("linear", 0, 10, 1e-5, 1e-1, 5)
    with pytest.raises(ConfigError, match=r"Step t = 10 is outside the schedule's 0 ... 9"):
        optim.learning_rate("cosine", 10, 10, 1e-5, 1e-1, 5)
    # Settings that a schedule does not use are ignored: cosine needs no n_s.
    optim.check_schedule("cosine", 10, 1e-5, 1e-1, None)
