package assign

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	Assignments   *prometheus.CounterVec   // team, reason
	Queued        *prometheus.CounterVec   // team
	Waiting       *prometheus.GaugeVec     // team
	Load          *prometheus.GaugeVec     // agent
	FirstResponse *prometheus.HistogramVec // team: speed to lead, handoff to first agent reply
	Breaches      *prometheus.CounterVec   // team, kind
	Escalations   *prometheus.CounterVec   // team, action
	Releases      *prometheus.CounterVec   // reason
	Notifications *prometheus.CounterVec   // kind, channel, result
	Followups     *prometheus.CounterVec   // action, result
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		Assignments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_assignments_total",
			Help: "Conversations assigned to an agent, by team and how the agent was chosen."}, []string{"team", "reason"}),
		Queued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_assign_queued_total",
			Help: "Conversations that had to wait in a team's queue because nobody was available."}, []string{"team"}),
		Waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchboard_assign_waiting",
			Help: "Conversations waiting in a team's queue (shared state, as last seen by this replica)."}, []string{"team"}),
		Load: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchboard_agent_open_conversations",
			Help: "Open conversations per agent (shared state, as last seen by this replica)."}, []string{"agent"}),
		FirstResponse: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchboard_first_response_seconds",
			Help:    "Speed to lead: time from handoff to the first agent reply.",
			Buckets: []float64{15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}}, []string{"team"}),
		Breaches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_sla_breaches_total",
			Help: "Missed SLA deadlines, by team and kind (first_response, next_response)."}, []string{"team", "kind"}),
		Escalations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_sla_escalations_total",
			Help: "What a missed deadline led to: reassigned (next agent), escalated (escalation team) or none."}, []string{"team", "action"}),
		Releases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_releases_total",
			Help: "Conversations given back to the bot or closed, by reason."}, []string{"reason"}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_notifications_total",
			Help: "Notifications to agents and supervisors, by kind, channel and result."}, []string{"kind", "channel", "result"}),
		Followups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_followups_total",
			Help: "Follow-ups run or cancelled, by action and result."}, []string{"action", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Assignments, m.Queued, m.Waiting, m.Load, m.FirstResponse, m.Breaches, m.Escalations,
			m.Releases, m.Notifications, m.Followups)
	}
	return m
}
