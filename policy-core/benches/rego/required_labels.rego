# requiredLabels: the pod must carry every label key of `parameters.labels`.
package k8srequiredlabels

import data.lib.k8s

violation[{"msg": msg, "details": {"rule": "requiredLabels"}}] {
	provided := {key | k8s.pod.metadata.labels[key]}
	required := {key | key := input.parameters.labels[_].key}
	missing := required - provided
	count(missing) > 0
	msg := sprintf("pod <%v> lacks the required labels %v", [k8s.pod.metadata.name, missing])
}
