# The 14 constraints of the 12-rule policy as one query: each template's violations, evaluated
# with that constraint's parameters (`data.constraints.<template>`) as `input.parameters`, the
# way Gatekeeper's constraint framework hands parameters to a template.
package nodeguard.bench.twelverules

violation[v] {
	v := data.k8sallowedrepos.violation[_] with input.parameters as data.constraints.k8sallowedrepos
}

violation[v] {
	v := data.k8sdisallowedrepos.violation[_] with input.parameters as data.constraints.k8sdisallowedrepos
}

violation[v] {
	v := data.k8sdisallowedtags.violation[_] with input.parameters as data.constraints.k8sdisallowedtags
}

violation[v] {
	v := data.k8spspprivilegedcontainer.violation[_] with input.parameters as data.constraints.k8spspprivilegedcontainer
}

violation[v] {
	v := data.k8spspallowprivilegeescalation.violation[_] with input.parameters as data.constraints.k8spspallowprivilegeescalation
}

violation[v] {
	v := data.k8spspcapabilities.violation[_] with input.parameters as data.constraints.k8spspcapabilities
}

violation[v] {
	v := data.k8scontainerlimits.violation[_] with input.parameters as data.constraints.k8scontainerlimits
}

violation[v] {
	v := data.k8spsphostnamespace.violation[_] with input.parameters as data.constraints.k8spsphostnamespace
}

violation[v] {
	v := data.k8spsphostports.violation[_] with input.parameters as data.constraints.k8spsphostports
}

violation[v] {
	v := data.k8spsphostfilesystem.violation[_] with input.parameters as data.constraints.k8spsphostfilesystem
}

violation[v] {
	v := data.k8spsprunasnonroot.violation[_] with input.parameters as data.constraints.k8spsprunasnonroot
}

violation[v] {
	v := data.k8spspreadonlyrootfilesystem.violation[_] with input.parameters as data.constraints.k8spspreadonlyrootfilesystem
}

violation[v] {
	v := data.k8spspseccomp.violation[_] with input.parameters as data.constraints.k8spspseccomp
}

violation[v] {
	v := data.k8srequiredlabels.violation[_] with input.parameters as data.constraints.k8srequiredlabels
}
