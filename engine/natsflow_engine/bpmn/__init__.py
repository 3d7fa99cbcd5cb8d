"""BPMN 2.0: the compiled model (:mod:`.model`) and the parser that produces it."""

from natsflow_engine.bpmn.parser import parse_bpmn

__all__ = ["parse_bpmn"]
