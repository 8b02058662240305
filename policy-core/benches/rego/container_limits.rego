# resources.limits: each resource of `parameters.required` must have a limit.
# resources.maxLimits: limits may not exceed `parameters.cpu` and `parameters.memory` (and must be set).
package k8scontainerlimits

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "resources.limits"}}] {
	c := k8s.containers[_]
	resource := input.parameters.required[_]
	not has_limit(c, resource)
	msg := sprintf("container <%v> has no %v limit", [c.name, resource])
}

violation[{"msg": msg, "details": {"rule": "resources.maxLimits"}}] {
	c := k8s.containers[_]
	not has_limit(c, "cpu")
	msg := sprintf("container <%v> has no cpu limit (maximum %v)", [c.name, input.parameters.cpu])
}

violation[{"msg": msg, "details": {"rule": "resources.maxLimits"}}] {
	c := k8s.containers[_]
	units.parse(c.resources.limits.cpu) > units.parse(input.parameters.cpu)
	msg := sprintf("container <%v> cpu limit %v exceeds the maximum %v", [c.name, c.resources.limits.cpu, input.parameters.cpu])
}

violation[{"msg": msg, "details": {"rule": "resources.maxLimits"}}] {
	c := k8s.containers[_]
	not has_limit(c, "memory")
	msg := sprintf("container <%v> has no memory limit (maximum %v)", [c.name, input.parameters.memory])
}

violation[{"msg": msg, "details": {"rule": "resources.maxLimits"}}] {
	c := k8s.containers[_]
	units.parse_bytes(c.resources.limits.memory) > units.parse_bytes(input.parameters.memory)
	msg := sprintf("container <%v> memory limit %v exceeds the maximum %v", [c.name, c.resources.limits.memory, input.parameters.memory])
}

has_limit(c, resource) {
	c.resources.limits[resource]
}
