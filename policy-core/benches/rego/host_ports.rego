# hostPorts: a container may bind only host ports inside `parameters.ranges` ({min, max}).
package k8spsphostports

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "hostPorts"}}] {
	c := k8s.containers[_]
	port := c.ports[_].hostPort
	port != 0
	not port_allowed(port)
	msg := sprintf("container <%v> binds host port %v, which is not allowed", [c.name, port])
}

port_allowed(port) {
	r := input.parameters.ranges[_]
	port >= r.min
	port <= r.max
}
