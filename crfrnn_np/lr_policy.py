"""Learning-rate policies of Caffe's ``SGDSolver::GetLearningRate``.

``it`` is the number of updates already applied (``solver.iter``, starting at 0):

=========  ====================================================================================
fixed      ``base_lr``
step       ``base_lr * gamma ** floor(it / stepsize)``
exp        ``base_lr * gamma ** it``
inv        ``base_lr * (1 + gamma * it) ** (-power)``
multistep  ``base_lr * gamma ** k``; ``k`` (the solver's ``current_step``) advances by at most one per
           call, whenever ``it >= stepvalue[k]``
poly       ``base_lr * (1 - it / max_iter) ** power``
sigmoid    ``base_lr / (1 + exp(-gamma * (it - stepsize)))``
=========  ====================================================================================

``step`` and ``multistep`` keep their step index in ``current_step`` (saved in the solver state); the
functions here are pure: they return the new index instead of storing it.
"""
import math

from .errors import SolverError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def learning_rate(policy, it, base_lr, gamma=0.0, power=0.0, stepsize=0, stepvalue=(), max_iter=0,
                  current_step=0):
    """Rate for update number ``it`` under ``policy``.

    Parameters
    ----------
    policy : str
        One of :data:`POLICIES`.
    it : int
        Updates already applied.
    base_lr, gamma, power : float
    stepsize : int
        ``step`` (must be > 0) and ``sigmoid`` (the centre of the sigmoid).
    stepvalue : sequence of int
        ``multistep`` boundaries.
    max_iter : int
        ``poly``.
    current_step : int
        The step index before this call (``multistep``; ignored by the others).

    Returns
    -------
    (rate, current_step) : (float, int)
        The rate and the step index after this call.

    Raises
    ------
    SolverError
        For an unknown policy or a ``step`` policy without a positive ``stepsize``.
    """
    it = int(it)
    if policy == "fixed":
        return float(base_lr), current_step
    if policy == "step":
        if stepsize <= 0:
            raise SolverError("lr_policy \"step\" needs stepsize > 0 (got %d)" % stepsize)
        k = it // int(stepsize)
        return float(base_lr) * float(gamma) ** k, k
    if policy == "exp":
        return float(base_lr) * float(gamma) ** it, current_step
    if policy == "inv":
        return float(base_lr) * (1.0 + float(gamma) * it) ** (-float(power)), current_step
    if policy == "multistep":
        if current_step < len(stepvalue) and it >= stepvalue[current_step]:
            current_step += 1
        return float(base_lr) * float(gamma) ** current_step, current_step
    if policy == "poly":
        if max_iter <= 0:
            raise SolverError("lr_policy \"poly\" needs max_iter > 0 (got %d)" % max_iter)
        return float(base_lr) * (1.0 - it / float(max_iter)) ** float(power), current_step
    if policy == "sigmoid":
        return float(base_lr) / (1.0 + math.exp(-float(gamma) * (it - float(stepsize)))), current_step
    raise SolverError("unknown lr_policy \"%s\" (known: %s)" % (policy, ", ".join(POLICIES)))


def rate_from_param(solver_param, it, current_step=0):
    """:func:`learning_rate` with the fields of a ``SolverParameter`` message."""
    where = solver_param.where("lr_policy")
    try:
        return learning_rate(solver_param.lr_policy, it, solver_param.base_lr, gamma=solver_param.gamma,
                             power=solver_param.power, stepsize=solver_param.stepsize,
                             stepvalue=list(solver_param.stepvalue), max_iter=solver_param.max_iter,
                             current_step=current_step)
    except SolverError as e:
        if where:
            raise SolverError("%s: %s" % (where, e)) from None
        raise
