"""The HCS function library: registry, NumPy implementations and GPU twins."""

from .registry import (
    FunctionInfo,
    ParameterSpec,
    all_functions,
    categories,
    function_info,
    functions_in,
    get_function,
    register,
    search,
    special_io,
)

__all__ = [
    "FunctionInfo",
    "ParameterSpec",
    "all_functions",
    "categories",
    "function_info",
    "functions_in",
    "get_function",
    "register",
    "search",
    "special_io",
]
