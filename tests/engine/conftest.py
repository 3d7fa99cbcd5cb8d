from conftest_engine import checkpoint, kit

__all__ = ["checkpoint", "kit"]
