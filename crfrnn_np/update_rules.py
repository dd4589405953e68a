"""The update rules of Caffe's solvers, as pure functions on NumPy arrays.

Each function takes ``g``, the gradient of one parameter blob after iter_size normalisation and weight decay
(any shape), its history buffer(s) of the same shape (updated **in place**), the local rate
``rate * lr_mult`` and the rule's hyper-parameters, and returns the step ``s`` that the solver subtracts:
``w <- w - s``. Arithmetic stays in the arrays' dtype (float32 or float64), in Caffe's order of operations.

=========  ==================================================================================================
SGD        ``h = momentum*h + lr*g``; ``s = h``
Nesterov   ``h' = momentum*h + lr*g``; ``s = (1+momentum)*h' - momentum*h``
AdaGrad    ``h += g^2``; ``s = lr * g / (sqrt(h) + delta)``
RMSProp    ``h = rms_decay*h + (1-rms_decay)*g^2``; ``s = lr * g / (sqrt(h) + delta)``
AdaDelta   ``h1 = m*h1 + (1-m)*g^2``; ``u = g*sqrt((h2+delta)/(h1+delta))``; ``h2 = m*h2 + (1-m)*u^2``;
           ``s = lr*u``
Adam       ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g^2``; ``s = lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps)``
           with ``t`` = updates applied + 1
=========  ==================================================================================================
"""
import numpy as np


def _scalar(x, like):
    return like.dtype.type(x)


def sgd(g, h, rate, momentum):
    """SGD with momentum. ``h`` (shape of ``g``) is updated in place; returns the step (a copy of ``h``)."""
    h *= _scalar(momentum, h)
    h += _scalar(rate, h) * g
    return h.copy()


def nesterov(g, h, rate, momentum):
    """Nesterov's accelerated gradient (Caffe's form). ``h`` updated in place; returns the step."""
    m = _scalar(momentum, h)
    h_old = h.copy()
    h *= m
    h += _scalar(rate, h) * g
    return (_scalar(1.0, h) + m) * h - m * h_old


def adagrad(g, h, rate, delta):
    """AdaGrad. ``h`` accumulates ``g**2`` in place; returns ``rate * g / (sqrt(h) + delta)``."""
    h += g * g
    return g / (np.sqrt(h) + _scalar(delta, h)) * _scalar(rate, h)


def rmsprop(g, h, rate, rms_decay, delta):
    """RMSProp. ``h`` (running mean of ``g**2``) updated in place; returns the step."""
    d = _scalar(rms_decay, h)
    h *= d
    h += (_scalar(1.0, h) - d) * (g * g)
    return g / (np.sqrt(h) + _scalar(delta, h)) * _scalar(rate, h)


def adadelta(g, h1, h2, rate, momentum, delta):
    """AdaDelta. ``h1`` (mean of ``g**2``) and ``h2`` (mean of ``u**2``) updated in place; returns ``rate*u``."""
    m = _scalar(momentum, h1)
    one = _scalar(1.0, h1)
    dl = _scalar(delta, h1)
    h1 *= m
    h1 += (one - m) * (g * g)
    u = g * np.sqrt((h2 + dl) / (h1 + dl))
    h2 *= m
    h2 += (one - m) * (u * u)
    return u * _scalar(rate, h1)


def adam(g, m, v, rate, beta1, beta2, delta, t):
    """Adam. First and second moments ``m``, ``v`` updated in place; ``t`` = updates applied + 1."""
    b1 = _scalar(beta1, m)
    b2 = _scalar(beta2, m)
    one = _scalar(1.0, m)
    m *= b1
    m += (one - b1) * g
    v *= b2
    v += (one - b2) * (g * g)
    correction = np.sqrt(1.0 - float(beta2) ** t) / (1.0 - float(beta1) ** t)
    return _scalar(rate * correction, m) * (m / (np.sqrt(v) + _scalar(delta, m)))
