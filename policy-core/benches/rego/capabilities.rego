# capabilities.add: only `parameters.allowedCapabilities` may be added.
# capabilities.drop: each of `parameters.requiredDropCapabilities` must be dropped (ALL covers all).
package k8spspcapabilities

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "capabilities.add"}}] {
	c := k8s.containers[_]
	added := {cap | cap := c.securityContext.capabilities.add[_]}
	allowed := {cap | cap := input.parameters.allowedCapabilities[_]}
	extra := added - allowed
	count(extra) > 0
	msg := sprintf("container <%v> adds capabilities that are not allowed: %v", [c.name, extra])
}

violation[{"msg": msg, "details": {"rule": "capabilities.drop"}}] {
	c := k8s.containers[_]
	cap := input.parameters.requiredDropCapabilities[_]
	not drops(c, cap)
	msg := sprintf("container <%v> must drop capability %v", [c.name, cap])
}

drops(c, _) {
	c.securityContext.capabilities.drop[_] == "ALL"
}

drops(c, cap) {
	c.securityContext.capabilities.drop[_] == cap
}
