package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus metrics.
type Metrics struct {
	QueueDepth  prometheus.Gauge
	Partitions  prometheus.Gauge
	Processed   *prometheus.CounterVec
	Retries     *prometheus.CounterVec
	DeadLetters prometheus.Counter
	Duplicates  prometheus.Counter
	Stage       *prometheus.HistogramVec
	EndToEnd    prometheus.Histogram
	Replies     *prometheus.CounterVec
	Tokens      *prometheus.CounterVec
	CostUSD     *prometheus.CounterVec
	TimersFired *prometheus.CounterVec
	Handoffs    *prometheus.CounterVec
	Flagged     prometheus.Counter
	Isolated    prometheus.Counter
}

// NewMetrics registers the pipeline's metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	b := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		QueueDepth:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_queue_depth", Help: "Queued tasks not yet acknowledged, all partitions."}),
		Partitions:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_partitions_owned", Help: "Queue partitions this process owns."}),
		Processed:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_tasks_processed_total", Help: "Tasks completed, by kind."}, []string{"kind"}),
		Retries:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_task_retries_total", Help: "Failed task attempts that will be retried or dead-lettered."}, []string{"kind"}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_dead_letters_total", Help: "Tasks given up on and kept in the dead-letter list."}),
		Duplicates:  prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_duplicate_events_total", Help: "Events skipped because their provider id was seen before."}),
		Stage:       prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchboard_stage_seconds", Help: "Processing latency per stage.", Buckets: b}, []string{"stage"}),
		EndToEnd:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchboard_end_to_end_seconds", Help: "From webhook receipt to the task completing.", Buckets: b}),
		Replies:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_replies_total", Help: "Bot replies by outcome (sent, dropped)."}, []string{"outcome"}),
		Tokens:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_llm_tokens_total", Help: "LLM tokens by model and kind (input, output, cache_read, cache_write)."}, []string{"model", "kind"}),
		CostUSD:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_llm_cost_usd_total", Help: "Estimated LLM cost in USD, by model."}, []string{"model"}),
		TimersFired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_timers_fired_total", Help: "Timers handled, by kind."}, []string{"kind"}),
		Handoffs:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_handoffs_total", Help: "Conversations handed to a person, by reason."}, []string{"reason"}),
		Flagged:     prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_conversations_flagged_total", Help: "Conversations flagged for a person, e.g. past the history hard cap."}),
		Isolated:    prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_tasks_isolated_total", Help: "Tasks retried with their plugin calls made alone after a plugin died during their call."}),
	}
	if reg != nil {
		reg.MustRegister(m.QueueDepth, m.Partitions, m.Processed, m.Retries, m.DeadLetters, m.Duplicates, m.Stage,
			m.EndToEnd, m.Replies, m.Tokens, m.CostUSD, m.TimersFired, m.Handoffs, m.Flagged, m.Isolated)
	}
	return m
}
