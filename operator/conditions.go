package operator

import (
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// Condition reasons on an API. Compiler problem codes (EndpointNotFound,
// InvalidDefinition, CrossNamespaceRef, …) are Resolved reasons too.
const (
	ReasonResolved           = "Resolved"
	ReasonDefinitionNotFound = "DefinitionNotFound"
	ReasonDefinitionTooLarge = "DefinitionTooLarge"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonCrossNamespaceRef  = "CrossNamespaceRef"

	ReasonPrebuilt            = "PrebuiltImage"
	ReasonFoundInRegistry     = "FoundInRegistry"
	ReasonBuilt               = "Built"
	ReasonBuilding            = "Building"
	ReasonBuildQueued         = "BuildQueued"
	ReasonBuildFailed         = "BuildFailed"
	ReasonRegistryUnavailable = "RegistryUnavailable"
	ReasonTagCollision        = "TagCollision"

	ReasonDeployed     = "Deployed"
	ReasonApplyFailed  = "ApplyFailed"
	ReasonNameConflict = "NameConflict"
	ReasonAvailable    = "Available"
	ReasonProgressing  = "Progressing"
	ReasonNotResolved  = "NotResolved"
	ReasonNotBuilt     = "NotBuilt"
	ReasonNotDeployed  = "NotDeployed"
	ReasonWaitingImage = "WaitingForImage"
)

// setCondition records a condition on conds. meta.SetStatusCondition keeps
// lastTransitionTime when the status does not change, so re-recording the
// same outcome leaves the API's status byte-for-byte equal.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            truncate(message, maxMessage),
		ObservedGeneration: generation,
	})
}

// maxMessage keeps a condition message (which the API server caps at 32768
// bytes) short enough to read; a long list of problems is cut.
const maxMessage = 4096

// truncate cuts s to at most n bytes on a rune boundary, saying so.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = " …(truncated)"
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// ensureCondition sets a condition only when it is absent, so a later phase
// that did not run this time keeps reporting its last outcome.
func ensureCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	if meta.FindStatusCondition(*conds, typ) == nil {
		setCondition(conds, generation, typ, status, reason, message)
	}
}

// conditionOrder keeps the conditions in the pipeline's order, whatever order
// they were first set in.
var conditionOrder = map[string]int{
	v1alpha1.ConditionResolved: 0,
	v1alpha1.ConditionBuilt:    1,
	v1alpha1.ConditionDeployed: 2,
	v1alpha1.ConditionReady:    3,
}

func sortConditions(conds []metav1.Condition) {
	for i := 1; i < len(conds); i++ {
		for j := i; j > 0 && rank(conds[j].Type) < rank(conds[j-1].Type); j-- {
			conds[j], conds[j-1] = conds[j-1], conds[j]
		}
	}
}

func rank(typ string) int {
	if r, ok := conditionOrder[typ]; ok {
		return r
	}
	return len(conditionOrder)
}
