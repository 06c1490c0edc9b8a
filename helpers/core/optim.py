"""Update rules beside plain SGD, and schedules of the learning rate.

Update rules move a dict of parameter arrays against a dict of gradients with
the same keys and shapes (e.g. net.params and the grads of
network.forward_backward, the L2 term already in them), in place:

    sgd       theta <- theta - eta g
    momentum  v <- mu v + g;  theta <- theta - eta v                (PyTorch's SGD(momentum=mu))
    nesterov  v <- mu v + g;  theta <- theta - eta (g + mu v)       (PyTorch's SGD(nesterov=True))
    adam      m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2
              theta <- theta - eta m_hat / (sqrt(v_hat) + eps), with
              m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t), t = 1, 2, ...
    rmsprop   v <- rho v + (1 - rho) g^2;  theta <- theta - eta g / (sqrt(v) + eps)

Momentum follows PyTorch, not the textbook's v <- mu v - eta g; theta <- theta + v:
v sums raw gradients and eta multiplies it at the step, so the two agree while
eta is constant, and with a schedule a change of eta takes effect at once
instead of fading in through v. Adam is Kingma & Ba's (2015) Algorithm 1.
RMSprop is Tieleman & Hinton's (2012, Coursera lecture 6e) in PyTorch's form:
eps added outside the square root, as Adam's is, and no momentum.

Schedules give the learning rate at update step t = 0, 1, ..., total_steps - 1:

    cyclical  triangular between eta_min and eta_max, n_s steps up, n_s down (Smith, 2015)
    step      eta_max gamma^(t // step_size), never below eta_min
    cosine    eta_min + (eta_max - eta_min) (1 + cos(pi t / total_steps)) / 2; with a
              warm-up, eta climbs linearly from eta_min to eta_max in warmup steps
              and the cosine runs over the total_steps - warmup steps left
"""

import math

import numpy as np

from ..errors import ConfigError

UPDATE_RULES = ("sgd", "momentum", "nesterov", "adam", "rmsprop")
SCHEDULES = ("cyclical", "step", "cosine")

# The keys of each rule's state, so that a state made for another rule is refused.
STATE_KEYS = {
    "sgd": (),
    "momentum": ("velocity",),
    "nesterov": ("velocity",),
    "adam": ("m", "v", "t"),
    "rmsprop": ("v",),
}

RMSPROP_RHO = 0.99
"""RMSprop's decay rate rho of the mean square (PyTorch's alpha): 0.99, the
default of torch.optim.RMSprop and of cs231n's assignment 2 (rmsprop's
decay_rate), whose code our users compare against. Hinton's lecture (and
Keras) use 0.9, which forgets faster: the mean then spans about 10 steps'
gradients instead of 100, so a single noisy mini-batch moves the step
size more."""


def init_state(rule, params):
    """The state a rule carries from step to step, all zero before the first step.

    params: {name: array} -> a plain dict:
        "sgd": {} (no state);
        "momentum", "nesterov": {"velocity": {name: v}}, v shaped and typed like params[name];
        "adam": {"m": {name: m}, "v": {name: v}, "t": 0}, the first and second
            moments shaped and typed like params[name], and t the number of
            Adam steps taken (the next one is step t + 1);
        "rmsprop": {"v": {name: v}}, the running mean square of the gradients.
    """
    check_rule(rule)
    if rule in ("momentum", "nesterov"):
        return {"velocity": zeros_like(params)}
    if rule == "adam":
        return {"m": zeros_like(params), "v": zeros_like(params), "t": 0}
    if rule == "rmsprop":
        return {"v": zeros_like(params)}
    return {}


def zeros_like(params):
    return {name: np.zeros_like(p) for name, p in params.items()}


def update(rule, params, grads, state, eta, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8, rho=RMSPROP_RHO):
    """One step of the update rule: params and state change in place.

    params, grads: {name: array}, the same keys and shapes; state: from
    init_state(rule, params). momentum is used by "momentum" and "nesterov",
    beta1 and beta2 by "adam", rho by "rmsprop", eps by "adam" and "rmsprop";
    a rule ignores the others.

    The rule trusts its gradients: a NaN or infinity in grads would spread
    into params, and for momentum, Adam and RMSprop stay in the state for good. The
    caller refuses such a step by not calling update: it checks that the
    mini-batch's loss is finite first, as training.textbook_step does; params
    and state then stay as they were. Settings are checked before any array
    is touched, so a ConfigError leaves them unchanged too.
    """
    check_rule(rule)
    if not (math.isfinite(eta) and eta > 0):
        raise ConfigError(f"The learning rate eta must be a finite number > 0, got {eta}.")
    if set(state) != set(STATE_KEYS[rule]):
        raise ConfigError(
            f"This state (keys {sorted(state)}) was not made for the '{rule}' rule; "
            f"make it with init_state('{rule}', params)."
        )
    if rule in ("momentum", "nesterov") and not 0 < momentum < 1:
        raise ConfigError(
            f"momentum must be in (0, 1) for the '{rule}' rule, got {momentum}; 0.9 is usual "
            "(momentum 0 is plain SGD: use the 'sgd' rule)."
        )
    if rule == "adam":
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ConfigError(
                    f"{name} must be in [0, 1) for Adam, got {beta}; beta1 = 0.9, beta2 = 0.999 are usual."
                )
    if rule == "rmsprop" and not 0 <= rho < 1:
        raise ConfigError(f"rho must be in [0, 1) for RMSprop, got {rho}; 0.99 (PyTorch's alpha) or 0.9 is usual.")
    if rule in ("adam", "rmsprop") and not eps > 0:
        name = "Adam" if rule == "adam" else "RMSprop"
        raise ConfigError(
            f"eps must be > 0 for {name} (it keeps the step finite where v = 0), got {eps}; 1e-8 is usual."
        )

    if rule == "sgd":
        sgd_step(params, grads, eta)
    elif rule == "momentum":
        momentum_step(params, grads, state, eta, momentum)
    elif rule == "nesterov":
        nesterov_step(params, grads, state, eta, momentum)
    elif rule == "adam":
        adam_step(params, grads, state, eta, beta1, beta2, eps)
    else:
        rmsprop_step(params, grads, state, eta, rho, eps)


def check_rule(rule):
    if rule not in UPDATE_RULES:
        raise ConfigError(f"Unknown update rule {rule!r}; choose one of {', '.join(UPDATE_RULES)}.")


def sgd_step(params, grads, eta):
    """theta <- theta - eta g, for every parameter."""
    for name, theta in params.items():
        theta -= eta * grads[name]


def momentum_step(params, grads, state, eta, mu):
    """v <- mu v + g;  theta <- theta - eta v   (heavy ball, PyTorch's convention).

    state["velocity"][name]: v, shaped like params[name]. From v = 0 the
    first step is a plain SGD step.
    """
    for name, theta in params.items():
        v = state["velocity"][name]
        v *= mu
        v += grads[name]
        theta -= eta * v


def nesterov_step(params, grads, state, eta, mu):
    """v <- mu v + g;  theta <- theta - eta (g + mu v)   (PyTorch's Nesterov).

    The step looks ahead: it moves by g and by mu v, the part of the new
    velocity that the next step will carry theta along anyway. With a
    constant eta this is Sutskever et al.'s (2013) look-ahead gradient
    rewritten in terms of the look-ahead point (Bengio et al., 2012), so
    that the gradient is the one at the stored theta.
    """
    for name, theta in params.items():
        g = grads[name]
        v = state["velocity"][name]
        v *= mu
        v += g
        theta -= eta * (g + mu * v)


def adam_step(params, grads, state, eta, beta1, beta2, eps):
    """Adam (Kingma & Ba, 2015), with bias correction; t counts from 1.

    m <- beta1 m + (1 - beta1) g             (first moment, state["m"][name])
    v <- beta2 v + (1 - beta2) g^2           (second moment, state["v"][name])
    theta <- theta - eta m_hat / (sqrt(v_hat) + eps),
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t).
    The moments start at zero, so in the first steps they are biased
    towards zero, by the factors 1 - beta1^t and 1 - beta2^t that the
    correction divides out.
    """
    state["t"] += 1
    t = state["t"]
    for name, theta in params.items():
        g = grads[name]
        m, v = state["m"][name], state["v"][name]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta -= eta * m_hat / (np.sqrt(v_hat) + eps)


def rmsprop_step(params, grads, state, eta, rho, eps):
    """RMSprop (Tieleman & Hinton, 2012): each parameter's step divided by its gradients' root mean square.

    v <- rho v + (1 - rho) g^2               (state["v"][name], shaped like params[name])
    theta <- theta - eta g / (sqrt(v) + eps)
    Where gradients have been large the step shrinks, where small it grows,
    so every weight moves at about the same pace. Unlike Adam, v is not
    bias-corrected (nor is it in PyTorch): from v = 0 the first step is
    eta g / (sqrt(1 - rho) |g| + eps), about 10 eta sign(g) for rho = 0.99,
    so a learning rate that suits Adam is several times too large early on.
    """
    for name, theta in params.items():
        g = grads[name]
        v = state["v"][name]
        v *= rho
        v += (1 - rho) * g * g
        theta -= eta * g / (np.sqrt(v) + eps)


def cyclical_eta(t, eta_min, eta_max, n_s):
    """The triangular learning rate at update step t (t = 0, 1, ...)."""
    phase = t % (2 * n_s)
    rise = phase if phase <= n_s else 2 * n_s - phase
    return eta_min + rise / n_s * (eta_max - eta_min)


def step_eta(t, eta_min, eta_max, gamma, step_size):
    """eta_max gamma^(t // step_size), floored at eta_min.

    The floor makes eta_min the lowest rate of every schedule; without it
    (or while it does not bind) this is PyTorch's StepLR.
    """
    return max(eta_min, eta_max * gamma ** (t // step_size))


def cosine_eta(t, total_steps, eta_min, eta_max, warmup=0):
    """Cosine decay from eta_max to eta_min, after an optional linear warm-up.

    For t < warmup:  eta_min + (eta_max - eta_min) t / warmup, from eta_min up.
    Then, with T = total_steps - warmup and tau = t - warmup:
        eta_min + (eta_max - eta_min) (1 + cos(pi tau / T)) / 2,
    eta_max at tau = 0, reaching eta_min at tau = T, one step after the last
    (PyTorch's CosineAnnealingLR with T_max = T, preceded by LinearLR).
    """
    if t < warmup:
        return eta_min + (eta_max - eta_min) * t / warmup
    tau, T = t - warmup, total_steps - warmup
    return eta_min + (eta_max - eta_min) * (1 + math.cos(math.pi * tau / T)) / 2


def learning_rate(schedule, t, total_steps, eta_min, eta_max, n_s, gamma=0.1, step_size=None, warmup=0):
    """The learning rate at update step t = 0, 1, ..., total_steps - 1.

    n_s: the half cycle of "cyclical", in steps. gamma, step_size: the decay
    factor of "step" and the steps between decays (None: n_s). warmup: the
    steps of "cosine"'s linear warm-up (0: none). Check the settings once,
    with check_schedule, before the first step.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"Unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    if not 0 <= t < total_steps:
        raise ConfigError(f"Step t = {t} is outside the schedule's 0 ... {total_steps - 1}.")
    if schedule == "cyclical":
        return cyclical_eta(t, eta_min, eta_max, n_s)
    if schedule == "step":
        return step_eta(t, eta_min, eta_max, gamma, n_s if step_size is None else step_size)
    return cosine_eta(t, total_steps, eta_min, eta_max, warmup)


def check_schedule(schedule, total_steps, eta_min, eta_max, n_s, gamma=0.1, step_size=None, warmup=0):
    """Refuse schedule settings that cannot work; the arguments are learning_rate's.

    A schedule ignores the settings it does not use (n_s is only needed by
    "cyclical", and by "step" when step_size is None), except warmup,
    which only "cosine" has: a warm-up is never dropped silently.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"Unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    if not is_count(total_steps, 1):
        raise ConfigError(f"total_steps must be a whole number >= 1, got {total_steps}.")
    if not (0 < eta_min <= eta_max < math.inf):
        raise ConfigError(f"Need 0 < eta_min <= eta_max (finite), got eta_min={eta_min}, eta_max={eta_max}.")
    needs_n_s = schedule == "cyclical" or (schedule == "step" and step_size is None)
    if needs_n_s and not is_count(n_s, 1):
        raise ConfigError(f"n_s must be a whole number >= 1, got {n_s}.")
    if schedule == "step":
        if not 0 < gamma <= 1:
            raise ConfigError(f"gamma (the step schedule's decay factor) must be in (0, 1], got {gamma}; 0.1 is usual.")
        if step_size is not None and not is_count(step_size, 1):
            raise ConfigError(f"step_size must be a whole number >= 1 (or None for n_s), got {step_size}.")
    if warmup != 0 and schedule != "cosine":
        raise ConfigError(f"warmup is only for the cosine schedule, not '{schedule}'; set it to 0 or use 'cosine'.")
    if schedule == "cosine" and not (is_count(warmup, 0) and warmup < total_steps):
        raise ConfigError(
            f"warmup must be a whole number of steps in 0 ... total_steps - 1 = {total_steps - 1}, got {warmup}."
        )


def is_count(x, least):
    """Whether x is a whole number >= least (an int, or a float such as 5.0)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(x) and x == int(x) and x >= least
