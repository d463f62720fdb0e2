"""The curated list of scikit-image and SciPy operations registered as step functions.

Every entry was checked to run on a 2-D image and to return an image of the same
size (``tests/test_functions_wrappers.py`` runs each one on a small stack). An entry
is ``(module, category, kind, names)``; ``kind`` says how the operation is applied
to each slice (see :mod:`._skimage_wrappers`):

- ``image``: ``f(slice)`` returns an image;
- ``mask``: the slice is first turned into a mask (``slice != 0``);
- ``labels``: integer slices are taken as labels, others are labelled (``slice != 0``);
- ``threshold``: ``f(slice)`` returns a threshold (scalar or image); the result is ``slice > t``;
- ``classes``: ``f(slice)`` returns several thresholds; the result is the class index (uint8);
- ``rank``: a rank filter on 8/16-bit images with a disk ``footprint_radius``;
- ``first``: ``f(slice)`` returns a tuple whose first item is the image.

:data:`DEFAULTS` gives defaults for parameters that have none (or ``None``) in the
original; :data:`FIXED` gives arguments always passed and not shown in forms.
"""

from __future__ import annotations

from typing import Any

_SK_FILTERS = """
butterworth difference_of_gaussians farid farid_h farid_v frangi gaussian hessian laplace median
meijering prewitt prewitt_h prewitt_v roberts roberts_neg_diag roberts_pos_diag sato scharr scharr_h
scharr_v sobel sobel_h sobel_v unsharp_mask
"""
_SK_THRESHOLDS = """
threshold_isodata threshold_li threshold_local threshold_mean threshold_minimum threshold_niblack
threshold_otsu threshold_sauvola threshold_triangle threshold_yen
"""
_SK_RANK = """
autolevel autolevel_percentile enhance_contrast enhance_contrast_percentile entropy equalize
geometric_mean gradient gradient_percentile majority maximum mean mean_bilateral mean_percentile median
minimum modal noise_filter otsu percentile pop pop_bilateral pop_percentile subtract_mean
subtract_mean_percentile sum sum_bilateral sum_percentile threshold threshold_percentile
"""
_SK_MORPH_GREY = """
area_closing area_opening black_tophat closing diameter_closing diameter_opening dilation erosion
opening white_tophat h_maxima h_minima local_maxima local_minima max_tree_local_maxima
"""
_SK_MORPH_MASK = """
convex_hull_image convex_hull_object isotropic_closing isotropic_dilation isotropic_erosion
isotropic_opening medial_axis remove_small_holes remove_small_objects skeletonize thin
"""
_SK_EXPOSURE = "adjust_gamma adjust_log adjust_sigmoid equalize_adapthist equalize_hist rescale_intensity"
_SK_RESTORATION = "denoise_bilateral denoise_nl_means denoise_tv_bregman denoise_tv_chambolle rolling_ball"
_SK_FEATURE = """
canny corner_fast corner_harris corner_kitchen_rosenfeld corner_moravec corner_shi_tomasi
hessian_matrix_det local_binary_pattern shape_index
"""
_SK_SEGMENTATION = "chan_vese felzenszwalb inverse_gaussian_gradient morphological_chan_vese slic watershed"
_SK_LABELS = "clear_border expand_labels find_boundaries"
_SK_UTIL = "img_as_float32 img_as_ubyte img_as_uint invert"
_NDI_FILTERS = """
gaussian_filter gaussian_filter1d gaussian_gradient_magnitude gaussian_laplace laplace maximum_filter
maximum_filter1d median_filter minimum_filter minimum_filter1d percentile_filter prewitt rank_filter
sobel spline_filter spline_filter1d uniform_filter uniform_filter1d
"""
_NDI_GREY = "black_tophat grey_closing grey_dilation grey_erosion grey_opening morphological_gradient " \
            "morphological_laplace white_tophat"
_NDI_MASK = """
binary_closing binary_dilation binary_erosion binary_fill_holes binary_hit_or_miss binary_opening
binary_propagation distance_transform_bf distance_transform_cdt distance_transform_edt
"""

#: (module, category, kind, names)
OPERATIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = tuple(
    (module, category, kind, tuple(names.split()))
    for module, category, kind, names in (
        ("skimage.filters", "Filters", "image", _SK_FILTERS),
        ("skimage.filters", "Filters", "first", "gabor rank_order"),
        ("skimage.filters", "Thresholding", "threshold", _SK_THRESHOLDS),
        ("skimage.filters", "Thresholding", "classes", "threshold_multiotsu"),
        ("skimage.filters.rank", "Filters", "rank", _SK_RANK),
        ("skimage.morphology", "Morphology", "image", _SK_MORPH_GREY),
        ("skimage.morphology", "Morphology", "mask", _SK_MORPH_MASK),
        ("skimage.exposure", "Exposure", "image", _SK_EXPOSURE),
        ("skimage.restoration", "Restoration", "image", _SK_RESTORATION),
        ("skimage.feature", "Filters", "image", _SK_FEATURE),
        ("skimage.segmentation", "Segmentation", "image", _SK_SEGMENTATION),
        ("skimage.segmentation", "Segmentation", "labels", _SK_LABELS),
        ("skimage.measure", "Segmentation", "mask", "label"),
        ("skimage.util", "Intensity", "image", _SK_UTIL),
        ("skimage.transform", "Transform", "image", "rotate swirl"),
        ("scipy.ndimage", "Filters", "image", _NDI_FILTERS),
        ("scipy.ndimage", "Morphology", "image", _NDI_GREY),
        ("scipy.ndimage", "Morphology", "mask", _NDI_MASK),
        ("scipy.ndimage", "Segmentation", "first", "label"),
        ("scipy.ndimage", "Transform", "image", "rotate shift"),
    )
)

#: Defaults for parameters that are required or ``None`` in the original.
DEFAULTS: dict[str, dict[str, Any]] = {
    "skimage.filters.difference_of_gaussians": {"low_sigma": 1.0, "high_sigma": 4.0},
    "skimage.filters.gabor": {"frequency": 0.2},
    "skimage.filters.threshold_local": {"block_size": 35},
    "skimage.filters.threshold_niblack": {"window_size": 15},
    "skimage.filters.threshold_sauvola": {"window_size": 15},
    "skimage.filters.meijering": {"black_ridges": False},
    "skimage.filters.sato": {"black_ridges": False},
    "skimage.filters.frangi": {"black_ridges": False},
    "skimage.morphology.h_maxima": {"h": 10.0},
    "skimage.morphology.h_minima": {"h": 10.0},
    "skimage.morphology.isotropic_closing": {"radius": 2.0},
    "skimage.morphology.isotropic_dilation": {"radius": 2.0},
    "skimage.morphology.isotropic_erosion": {"radius": 2.0},
    "skimage.morphology.isotropic_opening": {"radius": 2.0},
    "skimage.feature.local_binary_pattern": {"P": 8, "R": 1.0},
    "skimage.segmentation.morphological_chan_vese": {"num_iter": 35},
    "skimage.segmentation.felzenszwalb": {"scale": 100.0},
    "skimage.restoration.rolling_ball": {"radius": 50.0},
    "skimage.transform.rotate": {"angle": 0.0},
    "scipy.ndimage.gaussian_filter": {"sigma": 1.0},
    "scipy.ndimage.gaussian_filter1d": {"sigma": 1.0},
    "scipy.ndimage.gaussian_gradient_magnitude": {"sigma": 1.0},
    "scipy.ndimage.gaussian_laplace": {"sigma": 1.0},
    "scipy.ndimage.maximum_filter": {"size": 3},
    "scipy.ndimage.maximum_filter1d": {"size": 3},
    "scipy.ndimage.minimum_filter": {"size": 3},
    "scipy.ndimage.minimum_filter1d": {"size": 3},
    "scipy.ndimage.median_filter": {"size": 3},
    "scipy.ndimage.percentile_filter": {"percentile": 50.0, "size": 3},
    "scipy.ndimage.rank_filter": {"rank": 0, "size": 3},
    "scipy.ndimage.uniform_filter": {"size": 3},
    "scipy.ndimage.uniform_filter1d": {"size": 3},
    "scipy.ndimage.black_tophat": {"size": 15},
    "scipy.ndimage.white_tophat": {"size": 15},
    "scipy.ndimage.grey_closing": {"size": 3},
    "scipy.ndimage.grey_dilation": {"size": 3},
    "scipy.ndimage.grey_erosion": {"size": 3},
    "scipy.ndimage.grey_opening": {"size": 3},
    "scipy.ndimage.morphological_gradient": {"size": 3},
    "scipy.ndimage.morphological_laplace": {"size": 3},
    "scipy.ndimage.rotate": {"angle": 0.0},
    "scipy.ndimage.shift": {"shift": 0.0},
}

#: Arguments always passed (not shown in forms).
FIXED: dict[str, dict[str, Any]] = {
    "skimage.segmentation.slic": {"channel_axis": None},
    "skimage.segmentation.felzenszwalb": {"channel_axis": None},
    "skimage.morphology.medial_axis": {"rng": 0},  # reproducible tie-breaking
    "scipy.ndimage.rotate": {"reshape": False},
}
