"""Workers of the Kubernetes example (examples/k8s/): one module per TaskDefinition's `module`."""
