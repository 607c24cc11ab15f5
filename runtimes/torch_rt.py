"""A torch module rebuilt from the ONNX file's LSTM weights: an independent path to torch.

Each LSTM node becomes ``OnnxLSTM``: ``torch.nn.LSTM`` (cuDNN on a GPU) when the node's
attributes are ones nn.LSTM has (default activations, no clip, peepholes or input_forget; any
direction, layout, sequence_lens and initial states), else an explicit torch recurrence of the
operator's equations. A graph that is one LSTM node runs as pure torch; any other graph runs in
onnx's ReferenceEvaluator with its LSTM nodes handed to these modules.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.runtimes.cuda import cuda_device_reason

# ONNX gate blocks i, o, f, c -> torch's i, f, g, o
_TORCH_GATE_ORDER = (0, 2, 3, 1)


def nn_lstm_reason(spec) -> str | None:
    """None when nn.LSTM computes this layer exactly, else what it lacks."""
    lacks = []
    if spec.clip is not None:
        lacks.append("clip")
    if spec.peepholes:
        lacks.append("peepholes")
    if spec.input_forget:
        lacks.append("input_forget")
    if spec.activations is not None and [a.lower() for a in spec.activations] != \
            ["sigmoid", "tanh", "tanh"] * spec.num_directions:
        lacks.append("activations")
    if spec.activation_alpha or spec.activation_beta:
        lacks.append("activation_alpha/beta")
    return ", ".join(lacks) or None


def _torch_activation(name, alpha, beta):
    import torch

    return {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "affine": lambda x: alpha * x + beta,
        "leakyrelu": lambda x: torch.where(x >= 0, x, alpha * x),
        "thresholdedrelu": lambda x: torch.where(x > alpha, x, torch.zeros_like(x)),
        "scaledtanh": lambda x: alpha * torch.tanh(beta * x),
        "hardsigmoid": lambda x: torch.clamp(alpha * x + beta, 0.0, 1.0),
        "elu": lambda x: torch.where(x >= 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0))),
        "softsign": lambda x: x / (1.0 + torch.abs(x)),
        "softplus": torch.nn.functional.softplus,
    }[name]


def _reverse_within(X, lens):
    """Each sequence of X [T,B,...] reversed within its own length; padding stays in place."""
    import torch

    T, batch = X.shape[0], X.shape[1]
    t = torch.arange(T, device=X.device)[:, None]
    order = torch.where(t < lens[None, :], lens[None, :] - 1 - t, t)
    return X[order, torch.arange(batch, device=X.device)[None, :]]


def build_module(node, device="cpu"):
    """An ``OnnxLSTM`` torch module for one ``lstm_bench.graph.LSTMNode``."""
    import torch

    class OnnxLSTM(torch.nn.Module):
        """forward(X, sequence_lens, initial_h, initial_c) -> (Y, Y_h, Y_c) in ONNX layout."""

        def __init__(self, weights):
            super().__init__()
            spec = self.spec = weights.spec
            self.fallback = nn_lstm_reason(spec)
            D, H = spec.num_directions, spec.hidden_size
            as_t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
            B = weights.B if weights.B is not None else np.zeros((D, 8 * H), np.float32)
            if self.fallback is None:
                self.lstm = torch.nn.LSTM(spec.input_size, H, bidirectional=D == 2)
                rows = np.concatenate([np.arange(g * H, (g + 1) * H) for g in _TORCH_GATE_ORDER])
                with torch.no_grad():
                    for d in range(D):
                        suffix = "_reverse" if d else ""
                        getattr(self.lstm, f"weight_ih_l0{suffix}").copy_(as_t(weights.W[d][rows]))
                        getattr(self.lstm, f"weight_hh_l0{suffix}").copy_(as_t(weights.R[d][rows]))
                        getattr(self.lstm, f"bias_ih_l0{suffix}").copy_(as_t(B[d, :4 * H][rows]))
                        getattr(self.lstm, f"bias_hh_l0{suffix}").copy_(as_t(B[d, 4 * H:][rows]))
            else:
                from lstm_bench.reference.activations import DEFAULT_ACTIVATIONS, resolve

                self.register_buffer("W", as_t(weights.W))
                self.register_buffer("R", as_t(weights.R))
                self.register_buffer("bias", as_t(B[:, :4 * H] + B[:, 4 * H:]))
                self.register_buffer("P", None if weights.P is None else as_t(weights.P))
                names = spec.activations or DEFAULT_ACTIVATIONS * D
                self.acts = [_torch_activation(name, alpha, beta) for name, alpha, beta, _ in
                             resolve(names, spec.activation_alpha, spec.activation_beta)]

        def forward(self, X, lens=None, h0=None, c0=None):
            spec = self.spec
            D, H = spec.num_directions, spec.hidden_size
            if spec.layout:
                X = X.transpose(0, 1)
                h0 = None if h0 is None else h0.transpose(0, 1)
                c0 = None if c0 is None else c0.transpose(0, 1)
            T, batch = X.shape[0], X.shape[1]
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
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

            T, batch = X.shape[0], X.shape[1]
            D, H = self.spec.num_directions, self.spec.hidden_size
            reverse = self.spec.direction == "reverse"  # nn.LSTM has no reverse-only mode
            if lens is None:
                Y, (Y_h, Y_c) = self.lstm(X.flip(0) if reverse else X, (h0, c0))
                Y = Y.flip(0) if reverse else Y
            else:
                if reverse:
                    X = _reverse_within(X, lens)
                # nn.LSTM refuses length 0: run one step and zero the result below
                packed = pack_padded_sequence(X, lens.clamp(min=1).cpu(), enforce_sorted=False)
                Y, (Y_h, Y_c) = self.lstm(packed, (h0, c0))
                Y, _ = pad_packed_sequence(Y, total_length=T)
                if reverse:
                    Y = _reverse_within(Y, lens)
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
                    Xd = X.flip(0) if lens is None else _reverse_within(X, lens)
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
                    Y = Y.flip(0) if lens is None else _reverse_within(Y, lens)
                if lens is not None:
                    empty = (lens == 0)[:, None]
                    h, c = torch.where(empty, 0.0, h), torch.where(empty, 0.0, c)
                Ys.append(Y)
                Y_hs.append(h)
                Y_cs.append(c)
            return torch.stack(Ys, 1), torch.stack(Y_hs), torch.stack(Y_cs)

    return OnnxLSTM(node.weights).to(device).eval()


def torch_missing() -> str | None:
    """Why torch cannot be used here, or None."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return f"torch is not installed ({exc})"
    return None


class TorchRuntime:
    name = "torch-cpu"
    device = "cpu"

    def __init__(self):
        self.model = None
        self.modules = {}
        self.evaluator = None
        self.single = None

    def available(self) -> str | None:
        return torch_missing()

    def open(self, model_path: str, *, threads: int | None = None) -> None:
        import torch

        from lstm_bench.graph import constants, lstm_nodes
        from lstm_bench.reference.model import evaluator_with_lstm, load_model

        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(model_path)
        try:
            nodes = lstm_nodes(self.model)
        except LSTMBenchError:  # weights computed at run time: built per call in _lstm
            nodes = []
        self.modules = {tuple(n.outputs): build_module(n, self.device) for n in nodes}
        self.paths = {n.name: ("nn.LSTM" if m.fallback is None else f"torch recurrence ({m.fallback})")
                      for n, m in zip(nodes, self.modules.values())}
        graph = self.model.graph
        self.constants = constants(graph)
        self.single = None
        if len(graph.node) == 1 and len(nodes) == 1:
            self.single = nodes[0]
        else:
            self.evaluator = evaluator_with_lstm(self.model, self._lstm)

    def _tensor(self, array):
        import torch

        return None if array is None else torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _call(self, outputs, inputs, module=None):
        import torch

        module = module or self.modules[tuple(outputs) + ("",) * (3 - len(outputs))]
        X, lens, h0, c0 = (inputs[k] for k in (0, 4, 5, 6))
        dtype = X.dtype
        with torch.inference_mode():
            result = module(self._tensor(X.astype(np.float32, copy=False)), self._tensor(lens),
                            *(self._tensor(None if s is None else s.astype(np.float32, copy=False))
                              for s in (h0, c0)))
        return tuple(r.cpu().numpy().astype(dtype, copy=False) for r in result)

    def _lstm(self, node, inputs, attrs):
        key = tuple(node.output) + ("",) * (3 - len(node.output))
        if key not in self.modules:  # inside If/Loop/Scan, or weights computed at run time:
            from lstm_bench.graph import lstm_node  # a module from the evaluated weights

            module = build_module(lstm_node(node, dict(zip(node.input, inputs))), self.device)
            return self._call(node.output, inputs, module)
        return self._call(node.output, inputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.single is not None:
            node = self.single
            inputs = [feeds.get(name, self.constants.get(name)) if name else None
                      for name in node.inputs]
            results = self._call(node.outputs, inputs)
            by_name = {name: value for name, value in zip(node.outputs, results) if name}
            return {o.name: by_name[o.name] for o in self.model.graph.output}
        from lstm_bench.runtimes.evaluator import run_evaluator

        return run_evaluator(self.evaluator, self.model, feeds)

    def notes(self) -> list[str]:
        return [f"{name}: {path}" for name, path in self.paths.items()
                if path != "nn.LSTM"]

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def close(self) -> None:
        self.modules, self.evaluator, self.single, self.model = {}, None, None, None


class TorchCudaRuntime(TorchRuntime):
    name = "torch-cuda"
    device = "cuda"

    def available(self) -> str | None:
        reason = super().available() or cuda_device_reason()
        if reason:
            return reason
        import torch

        if not torch.cuda.is_available():
            return (f"torch {torch.__version__} cannot use the GPU "
                    f"({'a CPU-only build' if torch.version.cuda is None else 'torch.cuda.is_available() is False'})")
        return None
