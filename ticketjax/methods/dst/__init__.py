"""Dynamic sparse training (static, SET, RigL): `core` and `job`."""
