"""Reading numbers out of typed WIT values, and a binding's range."""

from wit_world.imports import types


def number(value):
    """The value as a float, or None when it is not a number."""
    if isinstance(value, (types.Value_Int, types.Value_Float)):
        return float(value.value)
    if isinstance(value, types.Value_Text):
        try:
            return float(value.value.strip())
        except ValueError:
            return None
    return None


def argument(fields, name):
    for field in fields:
        if field.name == name:
            found = number(field.value)
            if found is None:
                raise ValueError(f"binding argument {name} must be a number")
            return found
    return None


def binding_range(binding):
    """(min, max) of a binding, each None when absent; ValueError if invalid."""
    low = argument(binding.arguments, "min")
    high = argument(binding.arguments, "max")
    if low is None and high is None:
        raise ValueError("a binding needs a numeric min and/or max argument")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min {low:g} is greater than max {high:g}")
    return (low, high)
