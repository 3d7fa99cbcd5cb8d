"""The workflow engine: BPMN, FEEL, runtime on JetStream."""
