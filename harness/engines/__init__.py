"""Engine adapters: the protocol, a base class with defaults, and the built-in adapters.

`memcycle.engines.registry` resolves built-in names and `package.module:factory` specs;
an adapter of your own subclasses `EngineBase` (or implements `Engine` directly).
"""

from .base import Capabilities, Engine, EngineBase, EngineConfig, EngineError

__all__ = ["Capabilities", "Engine", "EngineBase", "EngineConfig", "EngineError"]
