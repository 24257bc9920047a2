"""Deskewing of handwritten-digit images by their second moments."""

import math

import numpy as np


def deskew(images, *, order=1):
    """Straighten slanted digits by a shear fitted to their pixel moments.

    Each image is treated as a distribution of ink over the pixel grid. With
    ``(r, c)`` the row and column coordinates, ``mu`` the intensity-weighted
    centre of mass, ``var_r`` the weighted variance of the rows and ``cov_rc``
    the weighted covariance of rows and columns, the slant is
    ``alpha = cov_rc / var_r``: how far the ink drifts sideways per row. The
    output pixel at ``(r, c)`` takes its value from the input at
    ``(r, c + alpha * r) + offset``, with the offset chosen so that the centre
    of the output grid lands on the centre of mass. The result is upright
    (zero row-column covariance, up to interpolation) and centred.

    Parameters
    ----------
    images : array-like
        Grey-level images: one image ``(height, width)``, a stack
        ``(n_images, height, width)``, or flat rows ``(n_images, height * width)``
        holding square images. A square 2-D array is taken to be one image.
    order : int, default=1
        Order of the spline interpolation passed to
        :func:`scipy.ndimage.affine_transform` (1 is bilinear and keeps
        intensities within the input range).

    Returns
    -------
    deskewed : ndarray of float64, same shape as ``images``
        The sheared images. An image with no ink is returned unchanged.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based
       learning applied to document recognition", Proc. IEEE 86(11), 1998
       (deskewed inputs for the k-NN and SVM baselines).
    .. [2] K. Q. Weinberger and L. K. Saul, "Distance metric learning for large
       margin nearest neighbor classification", JMLR 10, 2009 (MNIST
       preprocessed by deskewing and PCA).

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric.datasets import deskew
    >>> image = np.zeros((9, 9))
    >>> for row in range(9):  # a stroke leaning to the right
    ...     image[row, 2 + row // 2] = 1.0
    >>> upright = deskew(image)
    >>> upright.shape
    (9, 9)
    >>> rows, cols = np.nonzero(upright > 0.5)
    >>> int(np.ptp(cols)) < int(np.ptp(np.nonzero(image)[1]))
    True
    """
    from scipy.ndimage import affine_transform

    images = np.asarray(images, dtype=np.float64)
    original_shape = images.shape
    if images.ndim == 2 and original_shape[0] != original_shape[1]:
        side = math.isqrt(original_shape[1])
        if side * side != original_shape[1]:
            raise ValueError(
                f"images has shape {original_shape}; flat rows must hold a square "
                f"image, but {original_shape[1]} is not a perfect square."
            )
        stack = images.reshape(-1, side, side)
    elif images.ndim == 2:
        stack = images[np.newaxis]
    elif images.ndim == 3:
        stack = images
    else:
        raise ValueError(
            f"images has {images.ndim} dimensions (shape {original_shape}); "
            "expected one image (height, width), a stack (n_images, height, width) "
            "or flat rows (n_images, height * width)."
        )

    height, width = stack.shape[1:]
    rows = np.arange(height, dtype=np.float64)[:, np.newaxis]
    cols = np.arange(width, dtype=np.float64)[np.newaxis, :]
    mass = stack.sum(axis=(1, 2))
    has_ink = mass > 0
    safe_mass = np.where(has_ink, mass, 1.0)
    row_mean = (stack * rows).sum(axis=(1, 2)) / safe_mass
    col_mean = (stack * cols).sum(axis=(1, 2)) / safe_mass
    row_dev = rows - row_mean[:, np.newaxis, np.newaxis]
    col_dev = cols - col_mean[:, np.newaxis, np.newaxis]
    row_var = (stack * row_dev**2).sum(axis=(1, 2)) / safe_mass
    row_col_cov = (stack * row_dev * col_dev).sum(axis=(1, 2)) / safe_mass
    slant = np.where(row_var > 0, row_col_cov / np.where(row_var > 0, row_var, 1), 0)

    grid_centre = np.array([height, width], dtype=np.float64) / 2.0
    out = np.empty_like(stack)
    for index, image in enumerate(stack):
        if not has_ink[index]:
            out[index] = image
            continue
        shear = np.array([[1.0, 0.0], [slant[index], 1.0]])
        centre_of_mass = np.array([row_mean[index], col_mean[index]])
        offset = centre_of_mass - shear @ grid_centre
        out[index] = affine_transform(image, shear, offset=offset, order=order)
    return out.reshape(original_shape)
