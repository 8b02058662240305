# images.denied: no image may start with one of `parameters.repos`.
package k8sdisallowedrepos

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "images.denied"}}] {
	c := k8s.containers[_]
	repo := input.parameters.repos[_]
	startswith(c.image, repo)
	msg := sprintf("container <%v> uses image <%v> from the disallowed repo <%v>", [c.name, c.image, repo])
}
