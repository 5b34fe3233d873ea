package gql

import (
	"github.com/kiem-io/kiem/queries"
)

// Pack is a risk pack.
type Pack struct{ p *queries.Pack }

func (p *Pack) Name() string        { return p.p.Name }
func (p *Pack) Title() string       { return p.p.Title }
func (p *Pack) Description() string { return p.p.Description }
func (p *Pack) Source() string      { return p.p.Source }
func (p *Pack) Rules() []*RiskRule  { return riskRules(p.p.Rules) }

// RiskRule is a rule of a risk pack.
type RiskRule struct{ r *queries.Rule }

func riskRules(rs []*queries.Rule) []*RiskRule {
	out := make([]*RiskRule, len(rs))
	for i, r := range rs {
		out[i] = &RiskRule{r}
	}
	return out
}

func (r *RiskRule) ID() string          { return r.r.ID }
func (r *RiskRule) Pack() string        { return r.r.Pack }
func (r *RiskRule) Title() string       { return r.r.Title }
func (r *RiskRule) Severity() Severity  { return severityOf(r.r.Severity) }
func (r *RiskRule) Description() string { return r.r.Description }
func (r *RiskRule) Remediation() string { return r.r.Remediation }
func (r *RiskRule) Target() string      { return string(r.r.Target) }
func (r *RiskRule) Match() *string      { return optional(r.r.Match) }
func (r *RiskRule) Check() *string      { return optional(r.r.Check) }
func (r *RiskRule) Requires() []string  { return nonNil(r.r.Requires) }
func (r *RiskRule) Source() string      { return r.r.Source }
func (r *RiskRule) References() *RuleReferences {
	refs := r.r.References
	return &RuleReferences{Cis: nonNil(refs.CIS), Mitre: nonNil(refs.MITRE), Urls: nonNil(refs.URLs)}
}
func (r *RiskRule) Severities() []*GradedSeverity {
	out := make([]*GradedSeverity, len(r.r.Severities))
	for i, g := range r.r.Severities {
		out[i] = &GradedSeverity{When: g.When, Severity: severityOf(g.Severity)}
	}
	return out
}

// packs lists the engine's packs.
func packs(eng *queries.Engine) []*Pack {
	ps := eng.Packs()
	out := make([]*Pack, len(ps))
	for i, p := range ps {
		out[i] = &Pack{p}
	}
	return out
}

// rules lists the rules of every pack, or of the pack named.
func rules(eng *queries.Engine, pack *string) ([]*RiskRule, error) {
	out := []*RiskRule{}
	found := false
	for _, p := range eng.Packs() {
		if pack == nil || p.Name == *pack {
			found = true
			out = append(out, riskRules(p.Rules)...)
		}
	}
	if pack != nil && !found {
		return nil, userErrorf("pack: no pack %q is loaded", *pack)
	}
	return out, nil
}
