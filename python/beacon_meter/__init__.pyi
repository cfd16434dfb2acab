from ._native import ConfigError as ConfigError
from ._native import Meter as Meter
from ._native import Reporter as Reporter
from ._native import ReporterError as ReporterError
from ._native import Window as Window

__all__ = ["ConfigError", "Meter", "Reporter", "ReporterError", "Window"]
