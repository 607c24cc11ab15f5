"""The ONNX LSTM operator as a torch module: ``OnnxLSTM``, built from one node's weights.

``torch.nn.LSTM`` (cuDNN on a GPU) computes a node whose features it has (any direction, layout,
sequence_lens and initial states, default activations); for the others (clip, peepholes,
input_forget, other activations: ``features.TORCH``) the module runs the operator's equations
as an explicit torch recurrence, the same equations as ``reference.lstm``:

    i = f(X W_i + H R_i + P_i * C + Wb_i + Rb_i)        (ONNX gate order i, o, f, c)
    f = f(X W_f + H R_f + P_f * C + Wb_f + Rb_f)        (1 - i when input_forget)
    c~ = g(X W_c + H R_c + Wb_c + Rb_c)
    C' = f * C + i * c~
    o = f(X W_o + H R_o + P_o * C' + Wb_o + Rb_o)
    H' = o * h(C')

Imported only by the torch runtimes' ``open`` (it imports torch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_bench.reference.activations import ACTIVATIONS, DEFAULT_ACTIVATIONS, resolve

# ONNX gate blocks i, o, f, c -> torch's i, f, g, o: torch block k is ONNX block TORCH_GATE_ORDER[k]
TORCH_GATE_ORDER = (0, 2, 3, 1)

# The activation table of reference.activations, in torch: fn(alpha, beta) -> x -> y.
_TORCH_ACTIVATIONS = {
    "sigmoid": lambda a, b: torch.sigmoid,
    "tanh": lambda a, b: torch.tanh,
    "relu": lambda a, b: torch.relu,
    "affine": lambda a, b: (lambda x: a * x + b),
    "leakyrelu": lambda a, b: (lambda x: torch.where(x >= 0, x, a * x)),
    "thresholdedrelu": lambda a, b: (lambda x: torch.where(x > a, x, torch.zeros_like(x))),
    "scaledtanh": lambda a, b: (lambda x: a * torch.tanh(b * x)),
    "hardsigmoid": lambda a, b: (lambda x: torch.clamp(a * x + b, 0.0, 1.0)),
    "elu": lambda a, b: (lambda x: torch.where(x >= 0, x, a * torch.expm1(torch.clamp(x, max=0.0)))),
    "softsign": lambda a, b: (lambda x: x / (1.0 + torch.abs(x))),
    "softplus": lambda a, b: torch.nn.functional.softplus,
}
assert set(_TORCH_ACTIVATIONS) == set(ACTIVATIONS), "one activation table: keep both in step"


def torch_activation(name: str, alpha: float, beta: float):
    """The torch function of an activation named in ``reference.activations.ACTIVATIONS``."""
    return _TORCH_ACTIVATIONS[name.lower()](alpha, beta)


def reverse_within(X, lens):
    """Each sequence of X [T,B,...] reversed within its own length; padding stays in place."""
    T, batch = X.shape[0], X.shape[1]
    t = torch.arange(T, device=X.device)[:, None]
    order = torch.where(t < lens[None, :], lens[None, :] - 1 - t, t)
    return X[order, torch.arange(batch, device=X.device)[None, :]]


class OnnxLSTM(torch.nn.Module):
    """forward(X, sequence_lens, initial_h, initial_c) -> (Y, Y_h, Y_c) in ONNX layout."""

    def __init__(self, weights, fallback: str | None = None):
        """``fallback``: why nn.LSTM cannot compute this node (None: it can)."""
        super().__init__()
        spec = self.spec = weights.spec
        self.fallback = fallback
        D, H = spec.num_directions, spec.hidden_size
        as_t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
        B = weights.B if weights.B is not None else np.zeros((D, 8 * H), np.float32)
        if self.fallback is None:
            self.lstm = torch.nn.LSTM(spec.input_size, H, bidirectional=D == 2)
            rows = np.concatenate([np.arange(g * H, (g + 1) * H) for g in TORCH_GATE_ORDER])
            with torch.no_grad():
                for d in range(D):
                    suffix = "_reverse" if d else ""
                    getattr(self.lstm, f"weight_ih_l0{suffix}").copy_(as_t(weights.W[d][rows]))
                    getattr(self.lstm, f"weight_hh_l0{suffix}").copy_(as_t(weights.R[d][rows]))
                    getattr(self.lstm, f"bias_ih_l0{suffix}").copy_(as_t(B[d, :4 * H][rows]))
                    getattr(self.lstm, f"bias_hh_l0{suffix}").copy_(as_t(B[d, 4 * H:][rows]))
        else:
            self.register_buffer("W", as_t(weights.W))
            self.register_buffer("R", as_t(weights.R))
            self.register_buffer("bias", as_t(B[:, :4 * H] + B[:, 4 * H:]))
            self.register_buffer("P", None if weights.P is None else as_t(weights.P))
            names = spec.activations or DEFAULT_ACTIVATIONS * D
            self.acts = [torch_activation(name, alpha, beta) for name, alpha, beta, _ in
                         resolve(names, spec.activation_alpha, spec.activation_beta)]

    def forward(self, X, lens=None, h0=None, c0=None):
        spec = self.spec
        D, H = spec.num_directions, spec.hidden_size
        if spec.layout:
            X = X.transpose(0, 1)
            h0 = None if h0 is None else h0.transpose(0, 1)
            c0 = None if c0 is None else c0.transpose(0, 1)
        T, batch = X.shape[0], X.shape[1]
        if h0 is None or c0 is None:
            zeros = X.new_zeros(D, batch, H)
        h0 = zeros if h0 is None else h0.contiguous()
        c0 = zeros if c0 is None else c0.contiguous()
        if lens is not None:
            lens = lens.to(device=X.device, dtype=torch.long)
            if bool((lens == T).all()):
                lens = None
        if self.fallback is None:
            Y, Y_h, Y_c = self._nn_lstm(X, lens, h0, c0)
        else:
            Y, Y_h, Y_c = self._recurrence(X, lens, h0, c0)
        if spec.layout:
            return Y.permute(2, 0, 1, 3), Y_h.transpose(0, 1), Y_c.transpose(0, 1)
        return Y, Y_h, Y_c

    def _nn_lstm(self, X, lens, h0, c0):
        T, batch = X.shape[0], X.shape[1]
        D, H = self.spec.num_directions, self.spec.hidden_size
        reverse = self.spec.direction == "reverse"  # nn.LSTM has no reverse-only mode
        if lens is None:
            Y, (Y_h, Y_c) = self.lstm(X.flip(0) if reverse else X, (h0, c0))
            Y = Y.flip(0) if reverse else Y
        else:
            if reverse:
                X = reverse_within(X, lens)
            # nn.LSTM refuses length 0: run one step and zero the result below
            packed = pack_padded_sequence(X, lens.clamp(min=1).cpu(), enforce_sorted=False)
            Y, (Y_h, Y_c) = self.lstm(packed, (h0, c0))
            Y, _ = pad_packed_sequence(Y, total_length=T)
            if reverse:
                Y = reverse_within(Y, lens)
            empty = lens == 0
            if bool(empty.any()):
                Y[:, empty] = 0
                Y_h[:, empty] = 0
                Y_c[:, empty] = 0
        return Y.reshape(T, batch, D, H).permute(0, 2, 1, 3), Y_h, Y_c

    def _recurrence(self, X, lens, h0, c0):
        spec = self.spec
        H, clip = spec.hidden_size, spec.clip
        Ys, Y_hs, Y_cs = [], [], []
        for d in range(spec.num_directions):
            f, g, h_act = self.acts[3 * d:3 * d + 3]
            reverse = spec.direction == "reverse" or d == 1
            Xd = X
            if reverse:
                Xd = X.flip(0) if lens is None else reverse_within(X, lens)
            XW = Xd @ self.W[d].T + self.bias[d]
            RT = self.R[d].T
            P = None if self.P is None else self.P[d]
            h, c = h0[d], c0[d]
            out = []
            for t in range(X.shape[0]):
                i, o, fg, cc = (XW[t] + h @ RT).split(H, dim=-1)
                if P is not None:
                    i = i + P[:H] * c
                    fg = fg + P[2 * H:] * c
                if clip is not None:
                    i, fg, cc = (z.clamp(-clip, clip) for z in (i, fg, cc))
                i = f(i)
                fg = 1.0 - i if spec.input_forget else f(fg)
                c_new = fg * c + i * g(cc)
                if P is not None:
                    o = o + P[H:2 * H] * c_new
                if clip is not None:
                    o = o.clamp(-clip, clip)
                h_new = f(o) * h_act(c_new)
                if lens is None:
                    h, c = h_new, c_new
                    out.append(h_new)
                else:
                    live = (t < lens)[:, None]
                    h, c = torch.where(live, h_new, h), torch.where(live, c_new, c)
                    out.append(torch.where(live, h_new, torch.zeros_like(h_new)))
            Y = torch.stack(out)
            if reverse:
                Y = Y.flip(0) if lens is None else reverse_within(Y, lens)
            if lens is not None:
                empty = (lens == 0)[:, None]
                h, c = torch.where(empty, 0.0, h), torch.where(empty, 0.0, c)
            Ys.append(Y)
            Y_hs.append(h)
            Y_cs.append(c)
        return torch.stack(Ys, 1), torch.stack(Y_hs), torch.stack(Y_cs)
