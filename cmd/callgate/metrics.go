package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgate/callgate/calls"
	"github.com/callgate/callgate/store"
)

// storeGauges reports, at scrape time and from the store, the calls per
// state, the card deliveries owed per status and the pending room jobs, so
// every replica reports the same truth.
type storeGauges struct{ store calls.Store }

var (
	callsDesc      = prometheus.NewDesc("callgate_calls", "Calls by state.", []string{"state"}, nil)
	deliveriesDesc = prometheus.NewDesc("callgate_card_deliveries", "Card deliveries owed, by status (pending, retrying, dead).", []string{"status"}, nil)
	roomJobsDesc   = prometheus.NewDesc("callgate_room_jobs", "Calls whose provider room is still being created.", nil, nil)
)

func (g *storeGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- callsDesc
	ch <- deliveriesDesc
	ch <- roomJobsDesc
}

func (g *storeGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if counts, err := g.store.CountByState(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(callsDesc, err)
	} else {
		for _, s := range calls.States {
			ch <- prometheus.MustNewConstMetric(callsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	}
	if d, err := g.store.CountDeliveries(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(deliveriesDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(d.Pending), "pending")
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(d.Retrying), "retrying")
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(d.Dead), "dead")
	}
	if n, err := g.store.CountRoomJobs(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(roomJobsDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(roomJobsDesc, prometheus.GaugeValue, float64(n))
	}
}

// writerCounters reports the store's group-commit counters
// (store.WriterStats): writes per transaction is how much group commit
// shares, statements per write what a write costs the writer.
type writerCounters struct{ stats func() store.WriterStats }

var (
	writeTransactionsDesc = prometheus.NewDesc("callgate_store_write_transactions_total", "Write transactions the store's group writers ran, each holding a batch of writes.", nil, nil)
	writesDesc            = prometheus.NewDesc("callgate_store_writes_total", "Writes run in the group writers' transactions.", nil, nil)
	writeStatementsDesc   = prometheus.NewDesc("callgate_store_write_statements_total", "SQL statements the group writers' transactions ran (savepoints included, BEGIN and COMMIT not).", nil, nil)
	writesTogetherDesc    = prometheus.NewDesc("callgate_store_writes_together_total", "Writes applied together with others to one call, with no statements of their own.", nil, nil)
	writeWaitsDesc        = prometheus.NewDesc("callgate_store_write_waits_total", "Write transactions that waited for company under load (group commit wait).", nil, nil)
)

func (w writerCounters) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{writeTransactionsDesc, writesDesc, writeStatementsDesc, writesTogetherDesc, writeWaitsDesc} {
		ch <- d
	}
}

func (w writerCounters) Collect(ch chan<- prometheus.Metric) {
	st := w.stats()
	for d, v := range map[*prometheus.Desc]int64{writeTransactionsDesc: st.Transactions, writesDesc: st.Writes,
		writeStatementsDesc: st.Statements, writesTogetherDesc: st.Together, writeWaitsDesc: st.Waited} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
}

// workerMetrics counts what the room worker and the card outbox did.
type workerMetrics struct {
	roomJobs        *prometheus.CounterVec
	roomJobSeconds  prometheus.Histogram
	deliveries      *prometheus.CounterVec
	deliveryLatency *prometheus.HistogramVec
}

func newWorkerMetrics(reg prometheus.Registerer) (*workerMetrics, error) {
	m := &workerMetrics{
		roomJobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callgate_room_jobs_total",
			Help: "Room creation attempts by outcome (created, retry, permanent, exhausted).",
		}, []string{"outcome"}),
		roomJobSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callgate_room_job_seconds",
			Help:    "Time one room creation attempt took.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callgate_card_deliveries_total",
			Help: "Card delivery attempts by chat and outcome (delivered, retry, deferred, dead).",
		}, []string{"chat", "outcome"}),
		deliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "callgate_card_delivery_latency_seconds",
			Help:    "Time from a call change to its card showing it.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"chat"}),
	}
	for _, c := range []prometheus.Collector{m.roomJobs, m.roomJobSeconds, m.deliveries, m.deliveryLatency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *workerMetrics) RoomJobDone(outcome string, took time.Duration) {
	m.roomJobs.WithLabelValues(outcome).Inc()
	m.roomJobSeconds.Observe(took.Seconds())
}

func (m *workerMetrics) DeliveryDone(chat, outcome string, latency time.Duration) {
	m.deliveries.WithLabelValues(chat, outcome).Inc()
	if outcome == "delivered" {
		m.deliveryLatency.WithLabelValues(chat).Observe(max(latency, 0).Seconds())
	}
}

// wsDeliveryGauges reports the WebSocket hub's outbound requests (push
// hook, event webhooks) not yet delivered, by status, from the store.
type wsDeliveryGauges struct {
	count func(context.Context) (store.WSDeliveryCounts, error)
}

var wsDeliveriesDesc = prometheus.NewDesc("callgate_ws_deliveries", "WebSocket push and event webhook requests not yet delivered, by status (pending, retrying, dead).", []string{"status"}, nil)

func (g *wsDeliveryGauges) Describe(ch chan<- *prometheus.Desc) { ch <- wsDeliveriesDesc }

func (g *wsDeliveryGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := g.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(wsDeliveriesDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(wsDeliveriesDesc, prometheus.GaugeValue, float64(c.Pending), "pending")
	ch <- prometheus.MustNewConstMetric(wsDeliveriesDesc, prometheus.GaugeValue, float64(c.Retrying), "retrying")
	ch <- prometheus.MustNewConstMetric(wsDeliveriesDesc, prometheus.GaugeValue, float64(c.Dead), "dead")
}
