# privilegeEscalation: every container must set allowPrivilegeEscalation: false.
package k8spspallowprivilegeescalation

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "privilegeEscalation"}}] {
	c := k8s.containers[_]
	not c.securityContext.allowPrivilegeEscalation == false
	msg := sprintf("container <%v> must set securityContext.allowPrivilegeEscalation to false", [c.name])
}
