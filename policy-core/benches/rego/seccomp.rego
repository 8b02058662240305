# seccomp: every declared profile (pod and container level) must be of a type in
# `parameters.allowedProfiles`, and a profile must be in force.
package k8spspseccomp

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "seccomp"}}] {
	c := k8s.containers[_]
	t := c.securityContext.seccompProfile.type
	not allowed(t)
	msg := sprintf("container <%v> seccomp profile %v is not allowed (allowed: %v)", [c.name, t, input.parameters.allowedProfiles])
}

violation[{"msg": msg, "details": {"rule": "seccomp"}}] {
	t := k8s.pod_security_context.seccompProfile.type
	not allowed(t)
	msg := sprintf("pod seccomp profile %v is not allowed (allowed: %v)", [t, input.parameters.allowedProfiles])
}

violation[{"msg": msg, "details": {"rule": "seccomp"}}] {
	c := k8s.containers[_]
	not c.securityContext.seccompProfile.type
	not k8s.pod_security_context.seccompProfile.type
	msg := sprintf("container <%v> has no seccomp profile (allowed: %v)", [c.name, input.parameters.allowedProfiles])
}

allowed(t) {
	input.parameters.allowedProfiles[_] == t
}
