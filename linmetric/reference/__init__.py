"""Plain NumPy reference implementations: the readable oracle the fast code is tested against."""
