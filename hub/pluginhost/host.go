// Package pluginhost runs plugins as supervised subprocesses: it verifies
// each binary (pinned sha256, permissions), starts it through go-plugin with
// AutoMTLS and only the environment its config grants, configures it with
// its config block and the host services, bounds every call with a
// deadline, health-checks it, restarts it after a crash with exponential
// backoff and jitter (reporting a crash loop instead of spinning), and
// stops every process on shutdown.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Spec is one plugin instance to run.
type Spec struct {
	Name        string
	Kind        sdk.Kind
	Path        string
	SHA256      string            // hex; empty: unpinned (warned about)
	Env         map[string]string // the complete environment of the process
	Config      json.RawMessage
	CallTimeout time.Duration
}

// Options configure a Manager. Zero values take the defaults noted.
type Options struct {
	Logger *slog.Logger
	// Backend serves the host services (KV, log) to an instance; nil gives
	// each instance an in-memory KV, which does not survive a restart.
	Backend    func(instance string) sdk.HostBackend
	HubVersion string
	Registerer prometheus.Registerer

	MinBackoff     time.Duration // 200ms
	MaxBackoff     time.Duration // 30s
	CrashLoopCount int           // 5 crashes...
	CrashLoopIn    time.Duration // ...within 1m is a crash loop
	HealthEvery    time.Duration // 10s
	StartTimeout   time.Duration // 30s
	// WaitReady is how long a call waits for a restarting plugin before it
	// fails with a retryable error; 3s.
	WaitReady time.Duration
}

// State of an instance.
type State string

const (
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateRestarting State = "restarting"
	StateCrashLoop  State = "crash_loop"
	StateRefused    State = "refused" // the binary failed verification
	StateStopped    State = "stopped"
)

// Status is what the admin API shows about an instance.
type Status struct {
	Name      string       `json:"name"`
	Kind      sdk.Kind     `json:"kind"`
	State     State        `json:"state"`
	PID       int          `json:"pid,omitempty"`
	Restarts  int          `json:"restarts"`
	LastError string       `json:"last_error,omitempty"`
	Since     time.Time    `json:"since"`
	Pinned    bool         `json:"pinned"`
	Debug     bool         `json:"debug,omitempty"`
	Manifest  sdk.Manifest `json:"manifest"`
}

// ErrVerify marks a binary refused before it ran.
var ErrVerify = errors.New("plugin binary refused")

// Manager owns every plugin process of the hub.
type Manager struct {
	opts      Options
	log       *slog.Logger
	metrics   *metrics
	reattach  map[string]sdk.ReattachInfo
	mu        sync.Mutex
	instances map[string]*Instance
	order     []string
}

// New returns a Manager; Start launches the plugins.
func New(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.MinBackoff, 200*time.Millisecond)
	def(&opts.MaxBackoff, 30*time.Second)
	def(&opts.CrashLoopIn, time.Minute)
	def(&opts.HealthEvery, 10*time.Second)
	def(&opts.StartTimeout, 30*time.Second)
	def(&opts.WaitReady, 3*time.Second)
	if opts.CrashLoopCount == 0 {
		opts.CrashLoopCount = 5
	}
	m := &Manager{opts: opts, log: opts.Logger, metrics: newMetrics(opts.Registerer), instances: map[string]*Instance{}}
	if v := os.Getenv(sdk.ReattachEnv); v != "" {
		if err := json.Unmarshal([]byte(v), &m.reattach); err != nil {
			m.log.Error("ignoring malformed "+sdk.ReattachEnv, "err", err)
		}
	}
	return m
}

// Start verifies every binary, then launches and configures every plugin.
// It fails, and stops what it started, if any plugin cannot start: a hub
// with a missing connector should not look healthy.
func (m *Manager) Start(ctx context.Context, specs []Spec) error {
	for _, s := range specs {
		if _, debug := m.reattach[s.Name]; debug {
			continue
		}
		if err := Verify(s); err != nil {
			return err
		}
		if s.SHA256 == "" {
			m.log.Warn("plugin binary is not pinned: set sha256 in the config so a swapped binary is refused",
				"plugin", s.Name, "path", s.Path)
		}
	}
	var wg sync.WaitGroup
	for _, s := range specs {
		inst := m.add(s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst.run()
		}()
	}
	// Wait for every first start to finish one way or the other.
	startCtx, cancel := context.WithTimeout(ctx, m.opts.StartTimeout+5*time.Second)
	defer cancel()
	var errs []error
	for _, s := range specs {
		inst := m.Get(s.Name)
		select {
		case <-inst.firstDone:
			if err := inst.firstErr; err != nil {
				errs = append(errs, fmt.Errorf("plugin %s: %w", s.Name, err))
			}
		case <-startCtx.Done():
			errs = append(errs, fmt.Errorf("plugin %s: did not start: %w", s.Name, startCtx.Err()))
		}
	}
	if len(errs) > 0 {
		m.Stop()
		return errors.Join(errs...)
	}
	// The supervisors are detached from Start's caller; Stop ends them.
	go func() { wg.Wait() }()
	return nil
}

func (m *Manager) add(s Spec) *Instance {
	if s.CallTimeout == 0 {
		s.CallTimeout = 30 * time.Second
	}
	inst := &Instance{spec: s, m: m, state: StateStarting, since: time.Now(), ready: make(chan struct{}),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), firstDone: make(chan struct{})}
	if r, ok := m.reattach[s.Name]; ok {
		inst.debug = &r
	}
	if s.Kind == sdk.KindChannel {
		inst.webhooks = inst.newWebhookBatcher()
	}
	m.mu.Lock()
	m.instances[s.Name] = inst
	m.order = append(m.order, s.Name)
	m.mu.Unlock()
	return inst
}

// Get returns the named instance, or nil.
func (m *Manager) Get(name string) *Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.instances[name]
}

// Channel returns the named channel instance.
func (m *Manager) Channel(name string) (*Channel, bool) {
	i := m.Get(name)
	if i == nil || i.spec.Kind != sdk.KindChannel {
		return nil, false
	}
	return &Channel{i}, true
}

// CRM returns the named CRM instance.
func (m *Manager) CRM(name string) (*CRM, bool) {
	i := m.Get(name)
	if i == nil || i.spec.Kind != sdk.KindCRM {
		return nil, false
	}
	return &CRM{i}, true
}

// LLM returns the named LLM instance.
func (m *Manager) LLM(name string) (*LLM, bool) {
	i := m.Get(name)
	if i == nil || i.spec.Kind != sdk.KindLLM {
		return nil, false
	}
	return &LLM{i}, true
}

// Names lists the instances in config order.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.order...)
}

// Statuses reports every instance.
func (m *Manager) Statuses() []Status {
	var out []Status
	for _, n := range m.Names() {
		out = append(out, m.Get(n).Status())
	}
	return out
}

// Restart kills the named plugin; its supervisor starts it again at once.
func (m *Manager) Restart(name string) error {
	i := m.Get(name)
	if i == nil {
		return fmt.Errorf("no plugin %q", name)
	}
	i.restartNow()
	return nil
}

// Stop kills every plugin process and waits for the supervisors to end.
func (m *Manager) Stop() {
	m.mu.Lock()
	insts := make([]*Instance, 0, len(m.instances))
	for _, i := range m.instances {
		insts = append(insts, i)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, i := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i.shutdown()
		}()
	}
	wg.Wait()
}

// Verify checks a binary before it runs: it exists, is a regular file that
// is not world-writable, and matches its pinned sha256.
func Verify(s Spec) error {
	st, err := os.Stat(s.Path)
	if err != nil {
		return fmt.Errorf("%w: plugin %s: %v", ErrVerify, s.Name, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: plugin %s: %s is not a regular file", ErrVerify, s.Name, s.Path)
	}
	if st.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("%w: plugin %s: %s is world-writable (anyone could replace it); chmod o-w it", ErrVerify, s.Name, s.Path)
	}
	if s.SHA256 == "" {
		return nil
	}
	got, err := FileSHA256(s.Path)
	if err != nil {
		return fmt.Errorf("%w: plugin %s: %v", ErrVerify, s.Name, err)
	}
	if !strings.EqualFold(got, s.SHA256) {
		return fmt.Errorf("%w: plugin %s: checksum mismatch for %s: the config pins sha256 %s but the file has %s",
			ErrVerify, s.Name, s.Path, strings.ToLower(s.SHA256), got)
	}
	return nil
}

// FileSHA256 returns the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Instance is one supervised plugin.
type Instance struct {
	spec  Spec
	m     *Manager
	debug *sdk.ReattachInfo

	mu       sync.RWMutex
	client   *plugin.Client
	remote   any
	manifest sdk.Manifest
	state    State
	since    time.Time
	restarts int
	lastErr  string
	pid      int
	ready    chan struct{} // closed while running
	crashes  []time.Time
	gen      uint64 // counts the processes launched
	// blamed is the gen of a process that died during a call made alone
	// (sdk.Isolate): that call's message killed it, so the death counts
	// towards a crash loop only in bulk (blamedCrashFactor).
	blamed        uint64
	blamedCrashes []time.Time // deaths pinned on messages, within CrashLoopIn
	gate          gate

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
	firstDone chan struct{}
	firstErr  error

	webhooks *webhookBatcher // channel instances only
}

// Name is the instance name.
func (i *Instance) Name() string { return i.spec.Name }

// Kind is the instance's kind.
func (i *Instance) Kind() sdk.Kind { return i.spec.Kind }

// Status reports the instance.
func (i *Instance) Status() Status {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return Status{Name: i.spec.Name, Kind: i.spec.Kind, State: i.state, PID: i.pid, Restarts: i.restarts,
		LastError: i.lastErr, Since: i.since, Pinned: i.spec.SHA256 != "", Debug: i.debug != nil, Manifest: i.manifest}
}

func (i *Instance) setState(s State, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.state != s {
		i.state, i.since = s, time.Now()
	}
	if err != nil {
		i.lastErr = err.Error()
	}
	up := 0.0
	if s == StateRunning {
		up = 1
	}
	i.m.metrics.up.WithLabelValues(i.spec.Name).Set(up)
}

// run is the supervisor loop.
func (i *Instance) run() {
	defer close(i.done)
	log := i.m.log.With("plugin", i.spec.Name)
	first := true
	failures := 0
	for {
		err := i.launch()
		if first {
			i.firstErr = err
			close(i.firstDone)
			first = false
			if err != nil {
				i.setState(StateStopped, err)
				return
			}
		}
		ran := err == nil
		if ran {
			failures = 0
			log.Info("plugin running", "pid", i.Status().PID, "version", i.manifest.Version)
			err = i.watch()
			if err == nil { // asked to stop
				return
			}
			i.m.metrics.restarts.WithLabelValues(i.spec.Name).Inc()
			log.Warn("plugin stopped unexpectedly; restarting", "err", err)
		} else {
			log.Error("plugin failed to start", "err", err)
		}
		failures++
		// A process that died under a call made alone was killed by that
		// call's message, which the pipeline charges and dead-letters in
		// time; counting it here would stop every other message behind a
		// crash-loop backoff.
		// Two signs, as the call and this loop race: the call still holds
		// the gate alone, or it has left after marking the process blamed.
		blamed := ran && i.gate.alone()
		i.mu.Lock()
		blamed = blamed || (ran && i.blamed == i.gen)
		i.restarts++
		now := time.Now()
		if blamed {
			i.blamedCrashes = append(i.blamedCrashes, now)
		} else {
			i.crashes = append(i.crashes, now)
		}
		i.crashes = within(i.crashes, now, i.m.opts.CrashLoopIn)
		i.blamedCrashes = within(i.blamedCrashes, now, i.m.opts.CrashLoopIn)
		// Deaths pinned on messages are forgiven, but not without end: a
		// plugin that dies on most messages is broken, and a crash loop
		// holds the messages (uncharged) instead of dead-lettering each.
		loop := len(i.crashes) >= i.m.opts.CrashLoopCount ||
			len(i.blamedCrashes) >= blamedCrashFactor*i.m.opts.CrashLoopCount
		i.mu.Unlock()
		if blamed {
			log.Warn("plugin died during a call made alone: the call's message is charged, not the plugin")
		}
		state := StateRestarting
		switch {
		case errors.Is(err, ErrVerify):
			state = StateRefused
		case loop:
			state = StateCrashLoop
			log.Error("plugin is crash-looping; backing off", "crashes", i.m.opts.CrashLoopCount, "within", i.m.opts.CrashLoopIn, "err", err)
		}
		i.setState(state, err)
		select {
		case <-i.stop:
			i.setState(StateStopped, nil)
			return
		case <-time.After(i.backoff(failures, loop)):
		case <-i.kick:
		}
	}
}

// blamedCrashFactor: this many times CrashLoopCount deaths pinned on
// messages within CrashLoopIn make a crash loop too (20 a minute by
// default: four poison messages' worth).
const blamedCrashFactor = 4

// within drops the times older than d before now.
func within(ts []time.Time, now time.Time, d time.Duration) []time.Time {
	for len(ts) > 0 && now.Sub(ts[0]) > d {
		ts = ts[1:]
	}
	return ts
}

// backoff doubles from MinBackoff per consecutive failure, capped at
// MaxBackoff (straight to the cap in a crash loop), with ±25% jitter so
// replicas do not restart in lockstep.
func (i *Instance) backoff(failures int, loop bool) time.Duration {
	d := i.m.opts.MaxBackoff
	if !loop && failures < 30 {
		d = min(i.m.opts.MinBackoff<<(failures-1), i.m.opts.MaxBackoff)
	}
	jitter := 0.75 + rand.Float64()/2
	return time.Duration(float64(d) * jitter)
}

type describer interface {
	Describe(ctx context.Context) (sdk.Manifest, error)
	Configure(ctx context.Context, instance string, config json.RawMessage, backend sdk.HostBackend, hubVersion string) error
	Health(ctx context.Context) error
}

func (i *Instance) launch() error {
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           newSlogAdapter(i.m.log.With("plugin", i.spec.Name), i.spec.Name),
		StartTimeout:     i.m.opts.StartTimeout,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))},
	}
	if i.debug != nil {
		addr, err := reattachAddr(i.debug)
		if err != nil {
			return err
		}
		cfg.Plugins = sdk.HostPluginSets()[i.debug.Version]
		cfg.Reattach = &plugin.ReattachConfig{Protocol: plugin.Protocol(i.debug.Protocol), ProtocolVersion: i.debug.Version,
			Addr: addr, Pid: i.debug.Pid, Test: true}
		cfg.VersionedPlugins = nil
	} else {
		if err := Verify(i.spec); err != nil {
			return err
		}
		cmd := exec.Command(i.spec.Path)
		cmd.Env = append(envList(i.spec.Env), sdk.HubPIDEnv+"="+strconv.Itoa(os.Getpid()),
			sdk.LogLevelEnv+"="+minLevel(i.m.log).String())
		cfg.Cmd = cmd
		cfg.AutoMTLS = true
		cfg.SkipHostEnv = true // go-plugin would otherwise pass the hub's secrets along
		if i.spec.SHA256 != "" {
			sum, _ := hex.DecodeString(i.spec.SHA256)
			cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
		}
	}
	client := plugin.NewClient(cfg)
	remote, manifest, err := i.connect(client)
	if err != nil {
		client.Kill()
		return err
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	i.mu.Lock()
	i.client, i.remote, i.manifest, i.pid = client, remote, manifest, pid
	i.gen++
	// Wake the calls waiting for this restart: they hold the channel made
	// when the last process went away.
	select {
	case <-i.ready:
	default:
		close(i.ready)
	}
	i.mu.Unlock()
	i.setState(StateRunning, nil)
	return nil
}

func (i *Instance) connect(client *plugin.Client) (any, sdk.Manifest, error) {
	rpc, err := client.Client()
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, sdk.Manifest{}, fmt.Errorf("%w: plugin %s: checksum mismatch", ErrVerify, i.spec.Name)
		}
		return nil, sdk.Manifest{}, fmt.Errorf("start %s: %w", i.spec.Path, err)
	}
	raw, err := rpc.Dispense(string(i.spec.Kind))
	if err != nil {
		return nil, sdk.Manifest{}, fmt.Errorf("dispense %s: %w", i.spec.Kind, err)
	}
	d := raw.(describer)
	ctx, cancel := context.WithTimeout(context.Background(), i.m.opts.StartTimeout)
	defer cancel()
	man, err := d.Describe(ctx)
	if err != nil {
		return nil, sdk.Manifest{}, fmt.Errorf("describe: %w", err)
	}
	if man.Kind != i.spec.Kind {
		return nil, man, fmt.Errorf("%w: plugin %s: the binary is a %q plugin but the config says %q", ErrVerify, i.spec.Name, man.Kind, i.spec.Kind)
	}
	var backend sdk.HostBackend
	if i.m.opts.Backend != nil {
		backend = i.m.opts.Backend(i.spec.Name)
	} else {
		backend = sdk.NewMemoryHost(i.m.log.With("plugin", i.spec.Name))
	}
	if err := d.Configure(ctx, i.spec.Name, i.spec.Config, backend, i.m.opts.HubVersion); err != nil {
		return nil, man, fmt.Errorf("configure: %w", err)
	}
	return raw, man, nil
}

// watch waits until the process dies, fails a health check, is restarted on
// request (non-nil error) or the instance is stopped (nil).
func (i *Instance) watch() error {
	i.mu.RLock()
	client := i.client
	i.mu.RUnlock()
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	health := time.NewTicker(i.m.opts.HealthEvery)
	defer health.Stop()
	fail := func(err error) error {
		i.mu.Lock()
		i.remote = nil
		i.ready = make(chan struct{})
		i.mu.Unlock()
		client.Kill()
		return err
	}
	for {
		select {
		case <-i.stop:
			i.mu.Lock()
			i.remote = nil
			i.mu.Unlock()
			if i.debug == nil {
				client.Kill()
			}
			i.setState(StateStopped, nil)
			return nil
		case <-poll.C:
			if client.Exited() {
				return fail(errors.New("plugin process exited"))
			}
		case <-i.kick:
			if client.Exited() {
				return fail(errors.New("plugin process exited"))
			}
			if err := i.ping(client); err != nil {
				return fail(err)
			}
		case <-health.C:
			if err := i.ping(client); err != nil {
				return fail(err)
			}
		}
	}
}

func (i *Instance) ping(client *plugin.Client) error {
	rpc, err := client.Client()
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	if err := rpc.Ping(); err != nil {
		return fmt.Errorf("health check failed: %w", err)
	}
	return nil
}

// restartNow kills the process; the supervisor notices and restarts it
// without waiting for the backoff.
func (i *Instance) restartNow() {
	i.mu.RLock()
	client := i.client
	i.mu.RUnlock()
	if client != nil {
		client.Kill()
	}
	select {
	case i.kick <- struct{}{}:
	default:
	}
}

func (i *Instance) shutdown() {
	i.stopOnce.Do(func() { close(i.stop) })
	<-i.done
	i.mu.Lock()
	client := i.client
	i.mu.Unlock()
	if client != nil && i.debug == nil {
		client.Kill()
	}
}

// current returns the running plugin and its generation, waiting briefly
// for a restart.
func (i *Instance) current(ctx context.Context) (any, uint64, error) {
	i.mu.RLock()
	r, gen, ready, state := i.remote, i.gen, i.ready, i.state
	i.mu.RUnlock()
	if r != nil {
		return r, gen, nil
	}
	if state == StateStopped || state == StateRefused {
		return nil, 0, sdk.Retryable(fmt.Errorf("plugin %s is %s: %w", i.spec.Name, state, sdk.ErrNotRunning), i.m.opts.MaxBackoff).WithReason("plugin_unavailable")
	}
	t := time.NewTimer(i.m.opts.WaitReady)
	defer t.Stop()
	select {
	case <-ready:
		i.mu.RLock()
		r, gen = i.remote, i.gen
		i.mu.RUnlock()
		if r != nil {
			return r, gen, nil
		}
	case <-t.C:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	return nil, 0, sdk.Retryable(fmt.Errorf("plugin %s is %s: %w", i.spec.Name, state, sdk.ErrNotRunning), time.Second).WithReason("plugin_unavailable")
}

// call runs one plugin call with the instance's deadline and metrics.
func call[T any](i *Instance, ctx context.Context, method string, f func(context.Context, any) (T, error)) (T, error) {
	var zero T
	start := time.Now()
	alone := sdk.Isolated(ctx)
	err := i.gate.enter(ctx, alone)
	if err == nil {
		defer i.gate.leave(alone)
		var r any
		var gen uint64
		r, gen, err = i.current(ctx)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, i.spec.CallTimeout)
			var v T
			v, err = f(cctx, r)
			cancel()
			if err == nil {
				i.m.metrics.calls.WithLabelValues(i.spec.Name, method, "ok").Inc()
				i.m.metrics.latency.WithLabelValues(i.spec.Name, method).Observe(time.Since(start).Seconds())
				return v, nil
			}
			if sdk.ReasonOf(err) == "timeout" && ctx.Err() == nil {
				err = sdk.Retryable(fmt.Errorf("plugin %s %s: no answer within %s", i.spec.Name, method, i.spec.CallTimeout), 0).WithReason("timeout")
			}
			// A call cancelled though its caller was not: the supervisor
			// closed the connection of a process that died.
			canceled := errors.Is(err, context.Canceled) && ctx.Err() == nil
			if canceled || (sdk.ReasonOf(err) == "plugin_unavailable" && !errors.Is(err, sdk.ErrNotRunning)) {
				// The process went away under the call.
				// %v: a closed connection shows as context.Canceled, which
				// must not reach the caller as its own cancellation.
				err = sdk.Retryable(fmt.Errorf("%w: %v", sdk.ErrPluginDied, err), 0).WithReason("plugin_unavailable")
				if alone {
					i.mu.Lock()
					i.blamed = gen
					i.mu.Unlock()
				}
				select {
				case i.kick <- struct{}{}:
				default:
				}
			}
		}
	}
	i.m.metrics.calls.WithLabelValues(i.spec.Name, method, sdk.CodeOf(err).String()).Inc()
	i.m.metrics.latency.WithLabelValues(i.spec.Name, method).Observe(time.Since(start).Seconds())
	return zero, fmt.Errorf("plugin %s: %s: %w", i.spec.Name, method, err)
}

// Health asks the plugin whether its provider is reachable.
func (i *Instance) Health(ctx context.Context) error {
	_, err := call(i, ctx, "Health", func(ctx context.Context, r any) (struct{}, error) {
		return struct{}{}, r.(describer).Health(ctx)
	})
	return err
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// minLevel is the lowest level logger writes, told to plugins so they do
// not ship records it would drop.
func minLevel(logger *slog.Logger) slog.Level {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if logger.Enabled(context.Background(), l) {
			return l
		}
	}
	return slog.LevelError
}
