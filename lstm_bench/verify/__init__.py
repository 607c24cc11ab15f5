"""verify: every runtime judged against the float64 truth (feeds, parity, sensitivity,
streaming parity)."""
