package pluginhost

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	restarts *prometheus.CounterVec
	up       *prometheus.GaugeVec
	// batchSize counts the items of each batch sent to a plugin; calls
	// and latency still count every item as one call.
	batchSize *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_plugin_calls_total", Help: "Plugin calls by plugin instance, method and result code.",
		}, []string{"plugin", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_plugin_call_seconds", Help: "Plugin call latency, transport included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"plugin", "method"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_plugin_restarts_total", Help: "Plugin process restarts after a crash or failed health check.",
		}, []string{"plugin"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_plugin_up", Help: "1 when the plugin process is running and configured.",
		}, []string{"plugin"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_plugin_batch_size", Help: "Items per batched plugin call, by plugin instance and method.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}, []string{"plugin", "method"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.latency, m.restarts, m.up, m.batchSize)
	}
	return m
}
