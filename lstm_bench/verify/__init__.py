"""verify: every runtime judged against the float64 truth.

``run``: ``verify`` and its ``VerifyPlan``; ``parity``: a runtime's outputs against the truth;
``verdict``: the one ``Verdict`` type every report reads; ``report``: verify's report and the
part of it a bench report carries; ``sensitivity``: the widened float32 limit; ``streaming``:
chunked calls against one call; ``state_pairs``: the inputs and outputs a stream carries its
state by.
"""
