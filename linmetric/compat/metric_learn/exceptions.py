"""The exceptions metric-learn 0.7.0 defined, for code that catches them."""

from numpy.linalg import LinAlgError


class PreprocessorError(Exception):
    """The preprocessor failed on the indices it was given."""

    def __init__(self, original_error):
        super().__init__(
            f"An error occurred when trying to use the preprocessor: {original_error!r}"
        )


class NonPSDError(LinAlgError):
    """A matrix that should be positive semi-definite is not."""

    def __init__(self):
        super().__init__("Matrix is not positive semidefinite (PSD).")
