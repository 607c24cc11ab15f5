"""The ONNX ``LSTM`` operator in NumPy, float64 by default: the ground truth of lstm-bench.

Equations (ONNX gate order i, o, f, c; ``clip`` bounds every activation input):

    i = f(X W_i + H R_i + P_i * C + Wb_i + Rb_i)
    f = f(X W_f + H R_f + P_f * C + Wb_f + Rb_f)      (1 - i when input_forget)
    c~ = g(X W_c + H R_c + Wb_c + Rb_c)
    C' = f * C + i * c~
    o = f(X W_o + H R_o + P_o * C' + Wb_o + Rb_o)
    H' = o * h(C')

Where the spec is silent we follow onnxruntime's CPU kernel (see docs/reference.md): past a
sequence's length Y is 0 and the state is frozen; reverse runs from len-1 down to 0 and Y stays
aligned with input time; a length-0 sequence gives Y = Y_h = Y_c = 0.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.spec import DIRECTIONS
from lstm_bench.reference.activations import DEFAULT_ACTIVATIONS, resolve


def _one_direction(X, W, R, Wb, Rb, P, h, c, lens, acts, clip, input_forget):
    """Run one direction over X ``[T,B,I]`` from state (h, c); lens None means all T steps.

    The recurrence works in preallocated buffers: ``gates`` holds the i, o, f, c
    pre-activations one after the other, each a contiguous ``[B, H]`` block, and is
    overwritten by the activations in place. (``h @ R^T`` gives them side by side in each row;
    NumPy's elementwise loops run about 1.6x faster on whole blocks than on column slices, so
    the sum with the input projection writes them out gate by gate.)
    """
    f, g, h_act = acts
    T, batch, _ = X.shape
    H = R.shape[1]
    # The input projection of every time step in one matrix product, both biases folded in.
    XW = X.reshape(T * batch, X.shape[2]) @ W.T  # not -1: T or batch may be 0
    XW += Wb + Rb
    XW = XW.reshape(T, batch, 4, H).transpose(0, 2, 1, 3)  # [T, gate, B, H], a view
    RT = np.ascontiguousarray(R.T)
    hR = np.empty((batch, 4 * H), dtype=X.dtype)
    hR_by_gate = hR.reshape(batch, 4, H).transpose(1, 0, 2)  # [gate, B, H], a view
    p_i, p_o, p_f = (None, None, None) if P is None else (P[:H], P[H:2 * H], P[2 * H:])
    if lens is not None:
        live = (np.arange(T)[:, None] < lens)[:, :, None]  # [T, B, 1]: step t within length
        dead = ~live

    Y = np.zeros((T, batch, H), dtype=X.dtype)
    gates = np.empty((4, batch, H), dtype=X.dtype)
    i, o, fg, cc = gates
    iof = gates[:3]
    h, c = h.copy(), c.copy()
    c_new, scratch = np.empty_like(c), np.empty_like(c)
    for t in range(T):
        np.matmul(h, RT, out=hR)
        np.add(hR_by_gate, XW[t], out=gates)
        if P is None:
            # o does not wait for C_t: clip all four gates, then f over i, o, f in one call.
            if clip is not None:
                np.clip(gates, -clip, clip, out=gates)
            f(iof, out=iof)
        else:
            i += np.multiply(p_i, c, out=scratch)
            fg += np.multiply(p_f, c, out=scratch)
            if clip is not None:
                for gate in (i, fg, cc):
                    np.clip(gate, -clip, clip, out=gate)
            f(i, out=i)
            f(fg, out=fg)
        if input_forget:
            np.subtract(1.0, i, out=fg)
        g(cc, out=cc)
        # C_t = f * C_{t-1} + i * c~
        np.multiply(fg, c, out=c_new)
        c_new += np.multiply(i, cc, out=scratch)
        if P is not None:
            o += np.multiply(p_o, c_new, out=scratch)
            if clip is not None:
                np.clip(o, -clip, clip, out=o)
            f(o, out=o)
        # H_t = o * h(C_t), written straight into Y[t]
        h_new = np.multiply(o, h_act(c_new, out=scratch), out=Y[t])
        if lens is None:
            h = h_new
            c, c_new = c_new, c
        else:
            # Past its length a sequence keeps its state and outputs 0.
            np.copyto(h, h_new, where=live[t])
            np.copyto(c, c_new, where=live[t])
            np.copyto(h_new, 0.0, where=dead[t])
    if lens is not None:
        empty = lens == 0
        h[empty], c[empty] = 0.0, 0.0
    elif T == 0:  # every sequence has length 0: the same zeros as onnxruntime
        h[...], c[...] = 0.0, 0.0
    return Y, h, c


def _check(name, value, shape, dims, dtype):
    """``value`` as ``dtype`` if it has ``shape`` (``dims`` spells it out) and finite floats."""
    value = np.asarray(value)
    if value.shape != tuple(shape):
        raise LSTMBenchError(f"{name} has shape {list(value.shape)}, expected {list(shape)} "
                             f"([{dims}])")
    if not np.issubdtype(value.dtype, np.floating):
        raise LSTMBenchError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if not np.all(np.isfinite(value)):
        raise LSTMBenchError(f"{name} holds non-finite values (NaN or inf)")
    return value.astype(dtype, copy=False)


def lstm(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         hidden_size=None, direction="forward", activations=None, activation_alpha=None,
         activation_beta=None, clip=None, input_forget=0, layout=0, dtype=np.float64):
    """Compute the ONNX LSTM operator (opsets 7, 14, 22); returns (Y, Y_h, Y_c) in ``dtype``.

    Inputs and attributes carry the operator's names and shapes. ``dtype`` float64 (default)
    is the ground truth; float32 makes this a runtime under test.
    """
    dtype = np.dtype(dtype)
    if direction not in DIRECTIONS:
        raise LSTMBenchError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if layout not in (0, 1):
        raise LSTMBenchError(f"layout must be 0 or 1, got {layout!r}")
    if input_forget not in (0, 1):
        raise LSTMBenchError(f"input_forget must be 0 or 1, got {input_forget!r}")
    if clip is not None and not clip > 0:
        raise LSTMBenchError(f"clip must be > 0, got {clip!r}")
    D = 2 if direction == "bidirectional" else 1

    x_dims = ("batch_size, seq_length, input_size" if layout
              else "seq_length, batch_size, input_size")
    state_dims = ("batch_size, num_directions, hidden_size" if layout
                  else "num_directions, batch_size, hidden_size")
    X = np.asarray(X)
    if X.ndim != 3:
        raise LSTMBenchError(f"X has rank {X.ndim}, expected 3: [{x_dims}]")
    T, batch, I = (X.shape[1], X.shape[0], X.shape[2]) if layout else X.shape
    R = np.asarray(R)
    if R.ndim != 3:
        raise LSTMBenchError(f"R has rank {R.ndim}, expected 3: "
                             "[num_directions, 4*hidden_size, hidden_size]")
    H = R.shape[2]
    if hidden_size is not None and hidden_size != H:
        raise LSTMBenchError(f"hidden_size attribute is {hidden_size} but R {list(R.shape)} "
                             f"has hidden_size {H}")
    X = _check("X", X, (batch, T, I) if layout else (T, batch, I), x_dims, dtype)
    W = _check("W", W, (D, 4 * H, I), "num_directions, 4*hidden_size, input_size", dtype)
    R = _check("R", R, (D, 4 * H, H), "num_directions, 4*hidden_size, hidden_size", dtype)
    B = (np.zeros((D, 8 * H), dtype) if B is None
         else _check("B", B, (D, 8 * H), "num_directions, 8*hidden_size", dtype))
    P = None if P is None else _check("P", P, (D, 3 * H), "num_directions, 3*hidden_size", dtype)
    state_shape = (batch, D, H) if layout else (D, batch, H)
    states = []
    for name, value in (("initial_h", initial_h), ("initial_c", initial_c)):
        if value is None:
            states.append(np.zeros((D, batch, H), dtype))
        else:
            value = _check(name, value, state_shape, state_dims, dtype)
            states.append(value.transpose(1, 0, 2) if layout else value)
    if layout:
        X = X.transpose(1, 0, 2)

    lens = None
    if sequence_lens is not None:
        lens = np.asarray(sequence_lens)
        if lens.shape != (batch,) or not np.issubdtype(lens.dtype, np.integer):
            raise LSTMBenchError(f"sequence_lens has shape {list(lens.shape)} and dtype "
                                 f"{lens.dtype}, expected integers of shape [{batch}]")
        if np.any(lens < 0) or np.any(lens > T):
            raise LSTMBenchError(f"sequence_lens values must lie in 0..{T} (seq_length), "
                                 f"got {lens.tolist()}")
        if np.all(lens == T):
            lens = None  # no ragged entries: the unmasked fast path gives the same result

    names = list(activations) if activations is not None else list(DEFAULT_ACTIVATIONS) * D
    if len(names) != 3 * D:
        raise LSTMBenchError(
            f"activations: {len(names)} given, expected {3 * D} (f, g, h for each of {D} "
            f"direction{'s' if D > 1 else ''}{' of a bidirectional LSTM' if D > 1 else ''})")
    bound = [fn for *_, fn in resolve(names, activation_alpha, activation_beta)]

    Ys, Y_hs, Y_cs = [], [], []
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        Xd = X
        if reverse:
            # Reverse each sequence within its own length; padding stays in place.
            steps = lens if lens is not None else np.full(batch, T)
            t = np.arange(T)[:, None]
            order = np.where(t < steps, steps - 1 - t, t)
            Xd = X[order, np.arange(batch)]
        with np.errstate(over="ignore"):  # a sigmoid's exp(-x) = inf below -709 gives exact 0
            Y, Y_h, Y_c = _one_direction(
                Xd, W[d], R[d], B[d, :4 * H], B[d, 4 * H:], None if P is None else P[d],
                states[0][d], states[1][d], lens, bound[3 * d:3 * d + 3], clip, input_forget)
        if reverse:
            Y = Y[order, np.arange(batch)]
        Ys.append(Y)
        Y_hs.append(Y_h)
        Y_cs.append(Y_c)

    # [T, D, B, H]; one direction needs no copy of its Y (the stack would be ~3% of the time)
    Y = Ys[0][:, None] if D == 1 else np.stack(Ys, axis=1)
    Y_h, Y_c = np.stack(Y_hs), np.stack(Y_cs)
    if layout:
        return Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2), Y_c.transpose(1, 0, 2)
    return Y, Y_h, Y_c
