package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callgate/callgate/calls"
)

// wakeChannel is the PostgreSQL notification channel replicas share.
const wakeChannel = "callgate_wake"

// relayCoalesce bounds how often one replica notifies the others: a burst
// of changes costs one NOTIFY, since a wake-up is only a hint.
const relayCoalesce = 20 * time.Millisecond

// WakeRelay carries wake-ups between replicas sharing one PostgreSQL
// database with LISTEN/NOTIFY: a change on one replica wakes the workers
// (card outbox, room worker) of all. Nothing depends on it for
// correctness; workers poll anyway, so a lost notification only delays
// work by a poll interval.
type WakeRelay struct {
	dsn     string
	wake    *calls.Wake
	log     *slog.Logger
	pending chan struct{}
}

// NewWakeRelay returns a relay for the database at dsn. Run starts it, and
// wake.SetRelay(r.Notify) makes local changes reach the others.
func NewWakeRelay(dsn string, wake *calls.Wake, log *slog.Logger) *WakeRelay {
	if log == nil {
		log = slog.Default()
	}
	return &WakeRelay{dsn: dsn, wake: wake, log: log, pending: make(chan struct{}, 1)}
}

// Notify asks for the other replicas to be woken; it never blocks.
func (r *WakeRelay) Notify() {
	select {
	case r.pending <- struct{}{}:
	default:
	}
}

// Run listens and notifies until ctx ends, reconnecting after errors.
func (r *WakeRelay) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.session(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "wake relay lost its connection; reconnecting", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// session holds two connections: one waits for notifications, the other
// sends them (a pgx connection cannot do both at once).
func (r *WakeRelay) session(ctx context.Context) error {
	listen, err := pgx.Connect(ctx, r.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer listen.Close(context.WithoutCancel(ctx))
	send, err := pgx.Connect(ctx, r.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer send.Close(context.WithoutCancel(ctx))
	if _, err := listen.Exec(ctx, "LISTEN "+wakeChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sendErr := make(chan error, 1)
	go func() { sendErr <- r.sendLoop(sctx, send) }()
	for {
		if _, err := listen.WaitForNotification(ctx); err != nil {
			cancel()
			<-sendErr
			return err
		}
		// Workers here may have work another replica made.
		r.wake.Local()
		select {
		case err := <-sendErr:
			return err
		default:
		}
	}
}

func (r *WakeRelay) sendLoop(ctx context.Context, conn *pgx.Conn) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.pending:
		}
		if _, err := conn.Exec(ctx, "SELECT pg_notify($1, '')", wakeChannel); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(relayCoalesce):
		}
	}
}
