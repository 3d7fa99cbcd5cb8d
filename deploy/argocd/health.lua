-- Argo CD health check for natsflow.io/v1alpha1 Workflow, TaskDefinition and Trigger.
--
--   Healthy      the operator has observed the current spec (status.observedGeneration ==
--                metadata.generation) and reports condition Ready=True.
--   Degraded     Ready=False with a terminal reason: the operator does not retry (only its periodic
--                drift check looks again) and nothing improves until someone acts: fix the spec or
--                the BPMN, use a valid tenant namespace, remove the foreign Deployment that blocks a
--                TaskDefinition's workers, grant a missing NATS or RBAC permission.
--   Progressing  everything else: no status yet, a spec not yet observed, Ready missing/Unknown,
--                or Ready=False for a reason the operator retries (NATS unreachable, a missing
--                ConfigMap, Secret or stream, a failed Deployment write, ...).
--
-- Install: the resource.customizations in argocd-cm.yaml (tests keep both in sync).
-- The reasons below are the operator's terminal ones (operator/reconcile.py, workflow.py,
-- taskdefinition.py, trigger.py: the handlers report them without raising a retry); Ready carries
-- the reason of the failing condition. tests/delivery/test_delivery_argocd.py checks the list
-- against the reasons in the operator's code.
local TERMINAL_REASONS = {
  InvalidSpec = true,         -- Validated: the spec does not match the CRD model
  InvalidBpmn = true,         -- Validated: the Workflow's BPMN does not parse/validate or has no executable process
  InvalidForm = true,         -- Validated: a form of the Workflow is not a Camunda form, or two share an id
  InvalidTenant = true,       -- Validated: the namespace is not a valid natsflow tenant
  DeploymentConflict = true,  -- WorkloadReady: a Deployment of that name exists and is not owned by the TaskDefinition
  ServiceAccountNotAllowed = true, -- Validated: spec.serviceAccountName lacks the label natsflow.io/worker=true
  Forbidden = true,           -- Synced: the operator's ServiceAccount lacks an RBAC permission
  AmbiguousProcess = true,    -- Validated: workflowRef.name holds several processes and no processId
  ProcessNotInWorkflow = true,-- Validated: workflowRef.processId is not in the named Workflow
  NatsPermissionDenied = true,-- Synced: the NATS user lacks a permission natsflow needs
}

local hs = { status = "Progressing", message = "Waiting for the natsflow operator to report status" }

local function describe(cond)
  local reason = cond.reason or ""
  local message = cond.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  elseif message ~= "" then
    return message
  elseif reason ~= "" then
    return reason
  end
  return "Ready=" .. tostring(cond.status)
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting: the operator is cleaning up NATS objects"
  return hs
end

if obj.status == nil then
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    .. " (observed " .. tostring(observed) .. ")"
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, cond in ipairs(obj.status.conditions) do
    if cond.type == "Ready" then
      ready = cond
    end
  end
end

if ready == nil then
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if ready.status == "False" and TERMINAL_REASONS[ready.reason] then
  hs.status = "Degraded"
end
hs.message = describe(ready)
return hs
