"""Coverage for the atheris targets: sqllm's modules load through the editable install's own
importer, which atheris's import hook does not see, and instrumenting everything loaded
(numpy, torch) takes minutes; so the targets instrument the functions of the modules they name."""

import inspect

import atheris


def instrument(*modules) -> None:
    for module in modules:
        for obj in list(vars(module).values()):
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                atheris.instrument_func(obj)
            elif inspect.isclass(obj):
                for member in vars(obj).values():
                    if inspect.isfunction(member):
                        atheris.instrument_func(member)
