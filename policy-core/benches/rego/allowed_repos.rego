# images.allowed: every image must start with one of `parameters.repos`.
package k8sallowedrepos

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "images.allowed"}}] {
	c := k8s.containers[_]
	not from_allowed_repo(c.image)
	msg := sprintf("container <%v> uses image <%v>, which is not from an allowed repo %v", [c.name, c.image, input.parameters.repos])
}

from_allowed_repo(image) {
	startswith(image, input.parameters.repos[_])
}
