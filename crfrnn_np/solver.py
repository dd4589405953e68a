"""Caffe's solvers: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta and Adam.

``get_solver("solver.prototxt")`` reads a ``SolverParameter`` and builds the solver its ``type`` names (the
deprecated ``solver_type`` enum is upgraded). The solver owns a TRAIN net and zero or more TEST nets that
share the train net's parameter arrays.

One iteration (``Solver.step``; spec caffe.md §1.6)::

    zero parameter diffs; test when iter % test_interval == 0 (and iter > 0 or test_initialization)
    loss = mean over iter_size of net.forward_backward()        # parameter diffs accumulate
    rate = lr_policy(iter); clip the global L2 norm of all diffs to clip_gradients (if >= 0)
    for each learnable parameter p (net order):
        g = p.diff / iter_size;  g += weight_decay*decay_mult * (p.data | sign(p.data))   # L2 | L1
        step = rule(g, history, rate * lr_mult)
    p.data -= step for every parameter;  iter += 1;  snapshot when iter % snapshot == 0

Display lines follow Caffe's log (``Iteration N (x iter/s, y s/D iters), loss = L``, ``    Train net output
#k: name = v``, ``Iteration N, lr = r``, ``Iteration N, Testing net (#i)``, ``    Test net output #k: name =
mean``) and go to ``log`` (default: the ``crfrnn_np.solver`` logger at INFO level).

Snapshots and exact resume: see :mod:`crfrnn_np.solver_state`.
"""
import logging
import math
import os
import time

import numpy as np

from . import lr_policy, update_rules
from . import random as cn_random
from . import solver_state
from .errors import SolverError

SOLVER_TYPES = {}

#: The deprecated ``solver_type`` enum -> ``type`` string.
_LEGACY_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp",
                 "ADADELTA": "AdaDelta", "ADAM": "Adam"}

_logger = logging.getLogger("crfrnn_np.solver")


def register_solver(name):
    def deco(cls):
        cls.type = name
        SOLVER_TYPES[name] = cls
        return cls
    return deco


def _fmt(x):
    """Caffe's stream formatting of a float (6 significant digits)."""
    return "%g" % float(x)


def read_solver_param(path_or_message):
    """``(SolverParameter, solver file path or None)`` from a path, prototxt text or a Message."""
    from . import proto
    from .proto import Message
    if isinstance(path_or_message, Message):
        if path_or_message.type_name != "SolverParameter":
            raise SolverError("get_solver needs a SolverParameter, got a %s" % path_or_message.type_name)
        return path_or_message, None
    src = os.fspath(path_or_message)
    if os.path.isfile(src):
        return proto.read_prototxt(src, "SolverParameter"), src
    if "\n" in src or (":" in src and not src.endswith(".prototxt")):
        return proto.parse(src, "SolverParameter"), None
    raise SolverError("solver file '%s' not found" % src)


def upgrade_solver_type(param):
    """Caffe's ``UpgradeSolverType``: the ``solver_type`` enum becomes the ``type`` string."""
    if param.has("solver_type"):
        legacy = _LEGACY_TYPES[param.solver_type]
        if param.has("type") and param.type != legacy:
            where = param.where("solver_type")
            raise SolverError("%sboth solver_type (%s) and type (%s) are set"
                              % (where + ": " if where else "", param.solver_type, param.type))
        param = param.copy()
        param.type = legacy
        param.clear("solver_type")
    return param


def get_solver(path_or_message, dtype="float32", backend="cpu", log=None):
    """Build the solver described by a solver prototxt (path or text) or a ``SolverParameter`` Message.

    Parameters
    ----------
    path_or_message : str, os.PathLike or Message
    dtype : {"float32", "float64"}
        Dtype of the nets.
    backend : {"cpu", "cuda"}
    log : callable(str), optional
        Receives each display line (default: the ``crfrnn_np.solver`` logger).
    """
    param, path = read_solver_param(path_or_message)
    param = upgrade_solver_type(param)
    name = param.type
    cls = SOLVER_TYPES.get(name)
    if cls is None:
        lower = {k.lower(): v for k, v in SOLVER_TYPES.items()}
        cls = lower.get(name.lower())
    if cls is None:
        where = param.where("type")
        raise SolverError("%sunknown solver type '%s' (known: %s)"
                          % (where + ": " if where else "", name, ", ".join(sorted(SOLVER_TYPES))))
    return cls(param, solver_path=path, dtype=dtype, backend=backend, log=log)


def _resolve(path, base_dir):
    """A relative path as given (relative to the working folder) if it exists, else relative to base_dir."""
    if os.path.isabs(path) or os.path.exists(path) or base_dir is None:
        return path
    alt = os.path.join(base_dir, path)
    return alt if os.path.exists(alt) else path


class Solver:
    """Base class: nets, the iteration loop, testing, learning rate, snapshots.

    Subclasses name their update rule (``rule``, a function of :mod:`crfrnn_np.update_rules`), its
    hyper-parameters (:meth:`hyper_parameters`) and ``n_history`` (history buffers per parameter); the one
    update loop (:meth:`apply_update`: clip, normalise, regularise, the rule, ``w -= step``) is this class's.

    Attributes
    ----------
    param : Message
        The SolverParameter.
    net : crfrnn_np.Net
        The TRAIN net.
    test_nets : list of crfrnn_np.Net
    iter : int
        Updates applied so far.
    current_step : int
        Step index of the ``step``/``multistep`` policies.
    history : list of ndarray
        ``n_history * len(net.learnable_params)`` buffers (all first buffers, then all second buffers).
    smoothed_loss : float
        Mean of the last ``average_loss`` iteration losses.
    test_scores : list of dict
        Per test net, the last test's ``{output name: mean}``.
    """

    type = None

    def __init__(self, param, solver_path=None, dtype="float32", backend="cpu", log=None):
        self.param = param
        self.solver_path = solver_path
        self.base_dir = os.path.dirname(os.path.abspath(solver_path)) if solver_path else None
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.log = log if log is not None else _logger.info
        self.iter = 0
        self.current_step = 0
        self.smoothed_loss = 0.0
        self.losses = []
        self.test_scores = []
        self.requested_action = None
        self.requested_early_exit = False
        self.callbacks = []
        self.updating = False
        self._check_param()
        if param.random_seed >= 0:
            cn_random.set_seed(param.random_seed)
        self.net = self._build_train_net()
        self.test_nets = self._build_test_nets()
        for w in param.weights:
            for p in str(w).split(","):
                if p:
                    self.copy_weights(_resolve(p, self.base_dir))
        self.history = [np.zeros(p.shape, dtype=p.dtype)
                        for _ in range(self.n_history) for p in self.net.learnable_params]

    # -- set-up --------------------------------------------------------------------------------------------
    def _where(self, field):
        loc = self.param.where(field)
        if not loc and self.solver_path:
            loc = str(self.solver_path)
        return loc + ": " if loc else ""

    def _check_param(self):
        p = self.param
        if not p.has("base_lr") and p.lr_policy != "":
            raise SolverError("%ssolver needs base_lr" % self._where("lr_policy"))
        if p.lr_policy == "":
            raise SolverError("%ssolver needs lr_policy (one of %s)"
                              % (self._where("base_lr"), ", ".join(lr_policy.POLICIES)))
        if p.lr_policy not in lr_policy.POLICIES:
            raise SolverError("%sunknown lr_policy \"%s\" (known: %s)"
                              % (self._where("lr_policy"), p.lr_policy, ", ".join(lr_policy.POLICIES)))
        if p.iter_size < 1:
            raise SolverError("%siter_size must be >= 1 (got %d)" % (self._where("iter_size"), p.iter_size))
        if p.average_loss < 1:
            raise SolverError("%saverage_loss must be >= 1 (got %d)"
                              % (self._where("average_loss"), p.average_loss))
        if p.regularization_type not in ("L1", "L2"):
            raise SolverError("%sunknown regularization_type \"%s\" (L1 or L2)"
                              % (self._where("regularization_type"), p.regularization_type))

    def _net_kwargs(self, state, phase):
        return dict(phase=phase, dtype=self.dtype, backend=self.backend,
                    level=int(state.level), stages=tuple(state.stage))

    def _load_net_param(self, path):
        from . import proto
        return proto.read_net(_resolve(path, self.base_dir))

    def _build_train_net(self):
        from .net import Net
        p = self.param
        sources = [f for f in ("net", "net_param", "train_net", "train_net_param") if p.has(f)]
        if len(sources) != 1:
            raise SolverError("%sa solver needs exactly one of net, net_param, train_net, train_net_param "
                              "(got %s)" % (self._where(sources[1] if len(sources) > 1 else "base_lr"),
                                            ", ".join(sources) or "none"))
        src = sources[0]
        net_param = self._load_net_param(getattr(p, src)) if src in ("net", "train_net") else getattr(p, src)
        return Net(net_param, **self._net_kwargs(p.train_state, "TRAIN"))

    def _build_test_nets(self):
        from .net import Net
        p = self.param
        generic = p.has("net") or p.has("net_param")
        specific = [("param", m) for m in p.test_net_param] + [("file", f) for f in p.test_net]
        n_iter = len(p.test_iter)
        if (generic and n_iter < len(specific)) or (not generic and n_iter != len(specific)):
            raise SolverError("%stest_iter must be specified for each test network (%d test_iter, %d test "
                              "nets)" % (self._where("test_iter"), n_iter, len(specific)))
        instances = specific + [("generic", None)] * (n_iter - len(specific))
        if p.test_state and len(p.test_state) != len(instances):
            raise SolverError("%stest_state must be unspecified or given once per test net (%d test_state, "
                              "%d test nets)" % (self._where("test_state"), len(p.test_state), len(instances)))
        nets = []
        from .proto import Message
        for i, (kind, src) in enumerate(instances):
            if kind == "param":
                net_param = src
            elif kind == "file":
                net_param = self._load_net_param(src)
            elif p.has("net_param"):
                net_param = p.net_param
            else:
                net_param = self._load_net_param(p.net)
            state = p.test_state[i] if p.test_state else Message("NetState")
            net = Net(net_param, **self._net_kwargs(state, "TEST"))
            net.share_with(self.net)
            nets.append(net)
        self.test_scores = [dict() for _ in nets]
        return nets

    def copy_weights(self, path):
        """Load weights (.caffemodel or .h5) into the train net; ``copy_from`` writes into the parameter
        arrays in place, so the test nets, which share them, see the new values too. Logs the file's layers
        that match none of the net's (Caffe's "Ignoring source layer") and the net's layers with parameters
        that the file skips (they keep their filler values: a renamed, class-dependent layer)."""
        report = self.net.copy_from(path)
        for name in report["ignored"]:
            self.log("Ignoring source layer %s (no layer of this name in net '%s')" % (name, self.net.name))
        for name in report["missing"]:
            self.log("Layer %s: not in %s, keeps its filler initialisation" % (name, os.path.basename(path)))
        return report

    # -- the loop --------------------------------------------------------------------------------------------
    def add_callback(self, fn):
        """``fn(solver)`` is called after every iteration (after the update and any snapshot)."""
        self.callbacks.append(fn)

    def request(self, action):
        """Ask the loop to ``"snapshot"``, ``"stop"`` or ``"snapshot_stop"`` at the end of this iteration."""
        if action not in ("snapshot", "stop", "snapshot_stop", None):
            raise ValueError("unknown solver action %r" % action)
        self.requested_action = action

    def _take_request(self):
        a, self.requested_action = self.requested_action, None
        return a

    def _output_loss_weights(self, net):
        names = {id(b): n for n, b in net.blobs.items()}
        weights = {}
        for layer, tops in zip(net.layers, net.top_vecs):
            for blob, w in zip(tops, getattr(layer, "loss_weights", [])):
                if w:
                    weights[names.get(id(blob), blob.name)] = float(w)
        return weights

    def _update_smoothed_loss(self, loss, start_iter):
        n = self.param.average_loss
        if len(self.losses) < n:
            self.losses.append(loss)
            size = len(self.losses)
            self.smoothed_loss = (self.smoothed_loss * (size - 1) + loss) / size
        else:
            idx = (self.iter - start_iter) % n
            self.smoothed_loss += (loss - self.losses[idx]) / n
            self.losses[idx] = loss

    def step(self, iters):
        """Run ``iters`` iterations (forward/backward ``iter_size`` times, then one update each)."""
        p = self.param
        start_iter = self.iter
        stop_iter = self.iter + int(iters)
        self.losses = []
        self.smoothed_loss = 0.0
        self.requested_early_exit = False
        timer = time.perf_counter()
        iters_last = self.iter
        loss_weights = self._output_loss_weights(self.net)
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                self.test_all()
                if self.requested_early_exit:
                    break
            display = p.display and self.iter % p.display == 0
            loss = 0.0
            for _ in range(p.iter_size):
                loss += float(self.net.forward_backward())
            loss /= p.iter_size
            self._update_smoothed_loss(loss, start_iter)
            if display:
                lapse = time.perf_counter() - timer
                per_s = (self.iter - iters_last) / (lapse if lapse else 1.0)
                self.log("Iteration %d (%s iter/s, %ss/%d iters), loss = %s"
                         % (self.iter, _fmt(per_s), _fmt(lapse), p.display, _fmt(self.smoothed_loss)))
                timer = time.perf_counter()
                iters_last = self.iter
                self._log_outputs(self.net, "Train", loss_weights,
                                  {n: self.net.blobs[n].data for n in self.net.outputs})
            self.apply_update(display)
            self.iter += 1
            action = self._take_request()
            if (p.snapshot and self.iter % p.snapshot == 0) or action in ("snapshot", "snapshot_stop"):
                self.snapshot()
            for fn in self.callbacks:
                fn(self)
            if action in ("stop", "snapshot_stop"):
                self.requested_early_exit = True
                break

    def solve(self, resume_file=None):
        """Restore from ``resume_file`` if given, then run up to ``max_iter`` (Caffe's ``Solver::Solve``)."""
        p = self.param
        self.log("Solving %s" % (self.net.name or "net"))
        self.log("Learning Rate Policy: %s" % p.lr_policy)
        if resume_file:
            self.log("Restoring previous solver status from %s" % resume_file)
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            self.log("Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            loss = float(self.net.forward_prefilled())
            self._update_smoothed_loss(loss, start_iter)
            self.log("Iteration %d, loss = %s" % (self.iter, _fmt(self.smoothed_loss)))
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.log("Optimization Done.")

    # -- testing ---------------------------------------------------------------------------------------------
    def test_all(self):
        """Run every test net for its ``test_iter`` batches; returns the list of ``{output: mean}``."""
        for i in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            self.test(i)
        return self.test_scores

    def _log_outputs(self, net, kind, loss_weights, values):
        k = 0
        for name in net.outputs:
            w = loss_weights.get(name, 0.0)
            for v in np.asarray(values[name], dtype=np.float64).reshape(-1):
                suffix = " (* %s = %s loss)" % (_fmt(w), _fmt(w * v)) if w else ""
                self.log("    %s net output #%d: %s = %s%s" % (kind, k, name, _fmt(v), suffix))
                k += 1

    def test(self, i=0):
        """Test net ``i``: mean of each output over ``test_iter[i]`` forward passes."""
        p = self.param
        net = self.test_nets[i]
        self.log("Iteration %d, Testing net (#%d)" % (self.iter, i))
        sums = {}
        loss = 0.0
        n = int(p.test_iter[i])
        done = 0
        for _ in range(n):
            action = self._take_request()
            if action in ("stop", "snapshot_stop"):
                if action == "snapshot_stop":
                    self.snapshot()
                self.requested_early_exit = True
                break
            if action == "snapshot":
                self.snapshot()
            iter_loss = float(net.forward_prefilled())
            if p.test_compute_loss:
                loss += iter_loss
            for name in net.outputs:
                v = np.array(net.blobs[name].data, dtype=np.float64)
                sums[name] = sums[name] + v if name in sums else v
            done += 1
        if self.requested_early_exit:
            self.log("Test interrupted.")
            return self.test_scores[i]
        if p.test_compute_loss:
            self.log("Test loss: %s" % _fmt(loss / max(n, 1)))
        means = {name: (s / max(n, 1)) for name, s in sums.items()}
        self._log_outputs(net, "Test", self._output_loss_weights(net), means)
        self.test_scores[i] = {name: (float(m) if m.size == 1 else m) for name, m in means.items()}
        return self.test_scores[i]

    # -- the update ------------------------------------------------------------------------------------------
    def get_learning_rate(self):
        """Rate of update ``self.iter`` (advances ``current_step`` for step/multistep)."""
        rate, step = lr_policy.rate_from_param(self.param, self.iter, self.current_step)
        if step != self.current_step and self.param.lr_policy == "multistep":
            self.log("MultiStep Status: Iteration %d, step = %d" % (self.iter, step))
        self.current_step = step
        return rate

    def clip_gradients(self):
        """Scale all diffs by clip/norm when the global L2 norm exceeds ``clip_gradients`` (>= 0)."""
        clip = self.param.clip_gradients
        if clip < 0:
            return
        sumsq = sum(float(np.dot(b.diff.reshape(-1).astype(np.float64), b.diff.reshape(-1).astype(np.float64)))
                    for b in self.net.learnable_params)
        norm = math.sqrt(sumsq)
        if norm > clip:
            scale = clip / norm
            self.log("Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale factor %s"
                     % (_fmt(norm), _fmt(clip), _fmt(scale)))
            for b in self.net.learnable_params:
                b.diff *= b.dtype.type(scale)

    def normalize(self, i):
        if self.param.iter_size > 1:
            b = self.net.learnable_params[i]
            b.diff *= b.dtype.type(1.0 / self.param.iter_size)

    def regularize(self, i):
        b = self.net.learnable_params[i]
        decay = self.param.weight_decay * float(self.net.params_weight_decay[i])
        if decay:
            if self.param.regularization_type == "L2":
                b.diff += b.dtype.type(decay) * b.data
            else:
                b.diff += b.dtype.type(decay) * np.sign(b.data)

    #: The solver's update rule, a function of :mod:`crfrnn_np.update_rules` (``staticmethod``), and the number
    #: of history buffers it keeps per parameter.
    rule = None
    n_history = 1

    def hyper_parameters(self):
        """The rule's arguments after the local rate (momentum, delta, ...)."""
        return ()

    def compute_update_value(self, i, rate):
        """Overwrite ``learnable_params[i].diff`` with the step of parameter ``i``: the rule applied to the
        diff, the parameter's history buffers (updated in place) and its local rate ``rate * lr_mult``."""
        b = self.net.learnable_params[i]
        histories = [self._hist(i, k) for k in range(self.n_history)]
        b.diff[...] = self.rule(b.diff, *histories, self._local_rate(i, rate), *self.hyper_parameters())

    def apply_update(self, display=False):
        """Compute and apply the update of iteration ``self.iter`` (``updating`` is True meanwhile)."""
        self.updating = True
        try:
            self._apply_update(display)
        finally:
            self.updating = False

    def _apply_update(self, display):
        rate = self.get_learning_rate()
        if display:
            self.log("Iteration %d, lr = %s" % (self.iter, _fmt(rate)))
        self.clip_gradients()
        params = self.net.learnable_params
        if self._device_update_ok():
            for i in range(len(params)):
                self._device_update(i, rate)
            return
        for i in range(len(params)):
            self.normalize(i)
            self.regularize(i)
            self.compute_update_value(i, rate)
        for b in params:
            np.subtract(b.data, b.diff, out=b.data)

    # -- the update on the device (cuda backend) -------------------------------------------------------------
    #: Name of the rule's device kernel in :mod:`crfrnn_np.solver_cuda`, or None (the update runs on the host).
    device_rule = None

    def _device_update_ok(self):
        from .blob import Blob
        return (self.net.backend == "cuda" and self.device_rule is not None and self.param.clip_gradients < 0
                and (self.param.regularization_type == "L2" or not self.param.weight_decay)
                and all(type(b) is Blob for b in self.net.learnable_params))

    def _device_history(self, i):
        """Parameter ``i``'s history buffer as a SyncedMemory over the host array of :attr:`history` (which it
        updates in place when synced back, before a snapshot)."""
        from .synced_memory import SyncedMemory
        if getattr(self, "_history_memory", None) is None:
            self._history_memory = []
            for h in self.history:
                memory = SyncedMemory(h.shape, h.dtype)
                memory.set_cpu(h)
                self._history_memory.append(memory)
        return self._history_memory[i]

    def _sync_history(self):
        """Bring the device's history back into :attr:`history` (the snapshot writes those arrays)."""
        for memory in getattr(self, "_history_memory", None) or ():
            memory.cpu()

    def _device_update(self, i, rate):
        from . import solver_cuda
        b = self.net.learnable_params[i]
        decay = self.param.weight_decay * float(self.net.params_weight_decay[i])
        getattr(solver_cuda, self.device_rule)(b.mutable_gpu_data(), b.mutable_gpu_diff(),
                                               self._device_history(i).mutable_gpu(), self.param.iter_size,
                                               decay, self._local_rate(i, rate), *self.hyper_parameters())

    def _hist(self, i, k=0):
        return self.history[k * len(self.net.learnable_params) + i]

    def _local_rate(self, i, rate):
        return rate * float(self.net.params_lr[i])

    # -- snapshots ---------------------------------------------------------------------------------------------
    def snapshot_prefix(self):
        """Caffe's rule: ``snapshot_prefix`` (an existing folder gets the solver file's stem appended);
        unset: the solver file's path minus its extension."""
        p = self.param
        stem = os.path.splitext(os.path.basename(self.solver_path))[0] if self.solver_path else "solver"
        if not p.has("snapshot_prefix") or not p.snapshot_prefix:
            if self.solver_path:
                return os.path.splitext(self.solver_path)[0]
            return stem
        prefix = p.snapshot_prefix
        if (not os.path.isabs(prefix) and self.base_dir
                and not os.path.isdir(os.path.dirname(prefix) or ".")
                and os.path.isdir(os.path.join(self.base_dir, os.path.dirname(prefix)))):
            prefix = os.path.join(self.base_dir, prefix)
        if os.path.isdir(prefix):
            return os.path.join(prefix, stem)
        return prefix

    def snapshot_filename(self, ext):
        return "%s_iter_%d%s" % (self.snapshot_prefix(), self.iter, ext)

    def snapshot(self):
        """Write weights and solver state (and the resume sidecar); returns ``(weights, state)`` paths."""
        hdf5 = self.param.snapshot_format == "HDF5"
        model = self.snapshot_filename(".caffemodel.h5" if hdf5 else ".caffemodel")
        what = "HDF5" if hdf5 else "binary proto"
        self.log("Snapshotting to %s file %s" % (what, model))
        diff = bool(self.param.snapshot_diff)
        solver_state.atomic_write(model, lambda tmp: self._save_net(tmp, diff), keep_suffix=".h5" if hdf5 else "")
        state = self.snapshot_filename(".solverstate.h5" if hdf5 else ".solverstate")
        self.log("Snapshotting solver state to %s file %s" % (what, state))
        self._sync_history()
        solver_state.write_state(state, self.iter, model, self.history, self.current_step, hdf5)
        solver_state.write_sidecar(state, self._resume_state())
        return model, state

    def _save_net(self, path, diff):
        self.net.save(path, write_diff=diff)

    def _layer_states(self, net):
        return {layer.name: layer.get_state() for layer in net.layers if hasattr(layer, "get_state")}

    def _resume_state(self):
        return {"format": 1, "iter": self.iter, "rng": cn_random.get_state(),
                "train": self._layer_states(self.net), "test": [self._layer_states(n) for n in self.test_nets]}

    def _restore_layer_states(self, net, states, path):
        for layer in net.layers:
            if hasattr(layer, "set_state") and layer.name in states:
                layer.set_state(states[layer.name])

    def restore(self, path):
        """Resume from a ``.solverstate`` or ``.solverstate.h5``: weights (``learned_net``), iteration, step
        index, history, and (when the sidecar exists) the RNG and data-layer cursors."""
        path = os.fspath(path)
        if path.endswith(solver_state.SIDECAR_SUFFIX):
            raise SolverError("'%s' is the exact-resume sidecar (JSON) of a snapshot; pass the solver state itself, "
                              "'%s', and the sidecar next to it is read too"
                              % (path, path[:-len(solver_state.SIDECAR_SUFFIX)]))
        st = solver_state.read_state(path)
        if st["learned_net"]:
            self.copy_weights(self._find_learned_net(st["learned_net"], path))
        params = self.net.learnable_params
        if len(st["history"]) != len(self.history):
            raise SolverError("solver state '%s': %d history blobs, but this %s solver on net '%s' needs %d "
                              "(%d learnable parameters x %d)"
                              % (path, len(st["history"]), self.type, self.net.name, len(self.history),
                                 len(params), self.n_history))
        for k, (shape, values, legacy) in enumerate(st["history"]):
            target = self.history[k]
            if not solver_state.shapes_match(target.shape, shape, legacy) or values.size != target.size:
                i = k % len(params)
                name = self.net.param_names[i] if hasattr(self.net, "param_names") else str(i)
                raise SolverError("solver state '%s': history blob %d has shape %s, parameter %s has shape %s"
                                  % (path, k, " ".join(map(str, shape)), name,
                                     " ".join(map(str, target.shape))))
            target[...] = values.reshape(target.shape)
        self._history_memory = None          # the device copies (cuda backend) are made again from these
        self.iter = st["iter"]
        self.current_step = st["current_step"]
        side = solver_state.read_sidecar(path)
        if side is not None:
            cn_random.set_state(side["rng"])
            self._restore_layer_states(self.net, side.get("train", {}), path)
            for net, states in zip(self.test_nets, side.get("test", [])):
                self._restore_layer_states(net, states, path)

    def _find_learned_net(self, learned, state_path):
        folder = os.path.dirname(os.path.abspath(state_path))
        for cand in (learned, os.path.join(folder, learned), os.path.join(folder, os.path.basename(learned))):
            if os.path.isfile(cand):
                return cand
        raise SolverError("solver state '%s': its weights file '%s' (learned_net) was not found, nor next to "
                          "the state file" % (state_path, learned))


@register_solver("SGD")
class SGDSolver(Solver):
    """Stochastic gradient descent with momentum."""

    rule = staticmethod(update_rules.sgd)
    device_rule = "sgd"

    def hyper_parameters(self):
        return (self.param.momentum,)


@register_solver("Nesterov")
class NesterovSolver(Solver):
    """Nesterov's accelerated gradient."""

    rule = staticmethod(update_rules.nesterov)

    def hyper_parameters(self):
        return (self.param.momentum,)


@register_solver("AdaGrad")
class AdaGradSolver(Solver):
    """AdaGrad (momentum must be 0)."""

    rule = staticmethod(update_rules.adagrad)

    def _check_param(self):
        super()._check_param()
        if self.param.momentum != 0:
            raise SolverError("%sMomentum cannot be used with AdaGrad." % self._where("momentum"))

    def hyper_parameters(self):
        return (self.param.delta,)


@register_solver("RMSProp")
class RMSPropSolver(Solver):
    """RMSProp (momentum must be 0; 0 <= rms_decay <= 1)."""

    rule = staticmethod(update_rules.rmsprop)

    def _check_param(self):
        super()._check_param()
        if self.param.momentum != 0:
            raise SolverError("%sMomentum cannot be used with RMSProp." % self._where("momentum"))
        if not 0 <= self.param.rms_decay <= 1:
            raise SolverError("%srms_decay should lie between 0 and 1 (got %g)"
                              % (self._where("rms_decay"), self.param.rms_decay))

    def hyper_parameters(self):
        return (self.param.rms_decay, self.param.delta)


@register_solver("AdaDelta")
class AdaDeltaSolver(Solver):
    """AdaDelta (history: all squared-gradient means, then all squared-update means)."""

    rule = staticmethod(update_rules.adadelta)
    n_history = 2

    def hyper_parameters(self):
        return (self.param.momentum, self.param.delta)


@register_solver("Adam")
class AdamSolver(Solver):
    """Adam (beta1 = momentum, beta2 = momentum2, epsilon = delta; history: all m, then all v)."""

    rule = staticmethod(update_rules.adam)
    n_history = 2

    def hyper_parameters(self):
        return (self.param.momentum, self.param.momentum2, self.param.delta, self.iter + 1)
