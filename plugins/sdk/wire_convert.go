package sdk

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/switchboard-hub/switchboard/plugins/sdk/pluginv1"
)

// Conversions between the author-facing structs and the generated protobuf
// types. Proto types never appear in the SDK's public signatures (the rule
// Terraform's plugin SDK follows), so the wire can evolve under them.

func tsTo(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tsFrom(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func headersTo(h http.Header) []*pb.Header {
	out := make([]*pb.Header, 0, len(h))
	for k, v := range h {
		for i, x := range v {
			if !utf8.ValidString(x) {
				v = append([]string(nil), v...)
				v[i] = validUTF8(x)
			}
		}
		out = append(out, &pb.Header{Name: validUTF8(k), Values: v})
	}
	return out
}

// validUTF8 replaces invalid UTF-8 in s: protobuf strings must be valid,
// and a request carrying a header like "X-Sig: \xff" (anyone can send
// one) would otherwise fail to cross the wire, the hub would answer 503
// and the sender retry it for ever. No valid signature or provider header
// needs bytes outside UTF-8.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func headersFrom(hs []*pb.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, x := range hs {
		h[http.CanonicalHeaderKey(x.Name)] = append(h[http.CanonicalHeaderKey(x.Name)], x.Values...)
	}
	return h
}

func manifestTo(m Manifest) *pb.Manifest {
	pv := make([]int32, len(m.ProtocolVersions))
	for i, v := range m.ProtocolVersions {
		pv[i] = int32(v)
	}
	return &pb.Manifest{Name: m.Name, Kind: string(m.Kind), Version: m.Version, Capabilities: m.Capabilities,
		ConfigSchema: m.ConfigSchema, ProtocolVersions: pv, SdkVersion: m.SDKVersion, Description: m.Description}
}

func manifestFrom(p *pb.Manifest) Manifest {
	pv := make([]int, len(p.GetProtocolVersions()))
	for i, v := range p.GetProtocolVersions() {
		pv[i] = int(v)
	}
	return Manifest{Name: p.GetName(), Kind: Kind(p.GetKind()), Version: p.GetVersion(), Capabilities: p.GetCapabilities(),
		ConfigSchema: p.GetConfigSchema(), ProtocolVersions: pv, SDKVersion: p.GetSdkVersion(), Description: p.GetDescription()}
}

func identityTo(i Identity) *pb.Identity {
	return &pb.Identity{Channel: i.Channel, UserId: i.UserID, Phone: i.Phone, Email: i.Email, DisplayName: i.DisplayName, Instance: i.Instance}
}

func identityFrom(p *pb.Identity) Identity {
	if p == nil {
		return Identity{}
	}
	return Identity{Channel: p.Channel, UserID: p.UserId, Phone: p.Phone, Email: p.Email, DisplayName: p.DisplayName, Instance: p.Instance}
}

func factsTo(f LeadFacts) *pb.LeadFacts {
	return &pb.LeadFacts{Intent: f.Intent, Need: f.Need, Budget: f.Budget, Timeline: f.Timeline,
		DecisionMaker: f.DecisionMaker, DecisionMakerKnown: f.DecisionMakerKnown, Action: f.Action,
		Confidence: f.Confidence, Estimate: int32(f.Estimate), Extra: f.Extra}
}

func factsFrom(p *pb.LeadFacts) LeadFacts {
	if p == nil {
		return LeadFacts{}
	}
	return LeadFacts{Intent: p.Intent, Need: p.Need, Budget: p.Budget, Timeline: p.Timeline,
		DecisionMaker: p.DecisionMaker, DecisionMakerKnown: p.DecisionMakerKnown, Action: p.Action,
		Confidence: p.Confidence, Estimate: int(p.Estimate), Extra: p.Extra}
}

// ---- channel

func webhookRequestTo(r *WebhookRequest) *pb.WebhookRequest {
	return &pb.WebhookRequest{Method: validUTF8(r.Method), Path: validUTF8(r.Path), RawQuery: validUTF8(r.RawQuery), Headers: headersTo(r.Header),
		Body: r.Body, RemoteAddr: validUTF8(r.RemoteAddr), RequestId: validUTF8(r.RequestID), ReceivedAt: tsTo(r.ReceivedAt)}
}

func webhookRequestFrom(p *pb.WebhookRequest) *WebhookRequest {
	return &WebhookRequest{Method: p.Method, Path: p.Path, RawQuery: p.RawQuery, Header: headersFrom(p.Headers),
		Body: p.Body, RemoteAddr: p.RemoteAddr, RequestID: p.RequestId, ReceivedAt: tsFrom(p.ReceivedAt)}
}

func webhookResultTo(r *WebhookResult) *pb.WebhookResult {
	out := &pb.WebhookResult{Response: &pb.WebhookResponse{Status: int32(r.Response.Status),
		Headers: headersTo(r.Response.Header), Body: r.Response.Body}}
	out.Events = make([]*pb.Event, len(r.Events))
	for i := range r.Events {
		out.Events[i] = eventTo(&r.Events[i])
	}
	return out
}

func webhookResultFrom(p *pb.WebhookResult) *WebhookResult {
	r := &WebhookResult{}
	if p.Response != nil {
		r.Response = WebhookResponse{Status: int(p.Response.Status), Header: headersFrom(p.Response.Headers), Body: p.Response.Body}
	}
	r.Events = make([]Event, len(p.Events))
	for i, e := range p.Events {
		r.Events[i] = EventFromProto(e)
	}
	return r
}

func eventTo(e *Event) *pb.Event {
	out := &pb.Event{Id: e.ID, Kind: pb.EventKind(e.Kind), ConversationKey: e.ConversationKey,
		Contact: identityTo(e.Contact), Direction: pb.Direction(e.Direction), Author: pb.Author(e.Author),
		AgentId: e.AgentID, Timestamp: tsTo(e.Timestamp), Raw: e.Raw, Metadata: e.Metadata}
	if e.Message != nil {
		out.Message = messageTo(e.Message)
	}
	if e.Delivery != nil {
		d := e.Delivery
		out.Delivery = &pb.Delivery{MessageId: d.MessageID, Status: pb.DeliveryStatus(d.Status), ErrorCode: d.ErrorCode, ErrorMessage: d.ErrorMessage}
	}
	return out
}

// EventToProto converts an event to its wire form. The hub uses the wire
// form as the queue's durable encoding, so the two stay in step.
func EventToProto(e *Event) *pb.Event { return eventTo(e) }

// EventFromProto converts an event from its wire form.
func EventFromProto(p *pb.Event) Event {
	e := Event{ID: p.Id, Kind: EventKind(p.Kind), ConversationKey: p.ConversationKey, Contact: identityFrom(p.Contact),
		Direction: Direction(p.Direction), Author: Author(p.Author), AgentID: p.AgentId,
		Timestamp: tsFrom(p.Timestamp), Raw: p.Raw, Metadata: p.Metadata}
	if p.Message != nil {
		e.Message = messageFrom(p.Message)
	}
	if p.Delivery != nil {
		d := p.Delivery
		e.Delivery = &Delivery{MessageID: d.MessageId, Status: DeliveryStatus(d.Status), ErrorCode: d.ErrorCode, ErrorMessage: d.ErrorMessage}
	}
	return e
}

func messageTo(m *Message) *pb.Message {
	out := &pb.Message{Type: m.Type, Text: m.Text, Attachments: attachmentsTo(m.Attachments), ReplyTo: m.ReplyTo,
		Reaction: m.Reaction, InteractiveId: m.InteractiveID}
	if m.Location != nil {
		l := m.Location
		out.Location = &pb.Location{Latitude: l.Latitude, Longitude: l.Longitude, Name: l.Name, Address: l.Address}
	}
	return out
}

func messageFrom(p *pb.Message) *Message {
	m := &Message{Type: p.Type, Text: p.Text, Attachments: attachmentsFrom(p.Attachments), ReplyTo: p.ReplyTo,
		Reaction: p.Reaction, InteractiveID: p.InteractiveId}
	if p.Location != nil {
		l := p.Location
		m.Location = &Location{Latitude: l.Latitude, Longitude: l.Longitude, Name: l.Name, Address: l.Address}
	}
	return m
}

func attachmentsTo(as []Attachment) []*pb.Attachment {
	if len(as) == 0 {
		return nil
	}
	out := make([]*pb.Attachment, len(as))
	for i, a := range as {
		out[i] = &pb.Attachment{Type: a.Type, Url: a.URL, MediaId: a.MediaID, MimeType: a.MimeType, Name: a.Name,
			Size: a.Size, Caption: a.Caption, ThumbnailUrl: a.ThumbnailURL}
	}
	return out
}

func attachmentsFrom(ps []*pb.Attachment) []Attachment {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Attachment, len(ps))
	for i, a := range ps {
		out[i] = Attachment{Type: a.Type, URL: a.Url, MediaID: a.MediaId, MimeType: a.MimeType, Name: a.Name,
			Size: a.Size, Caption: a.Caption, ThumbnailURL: a.ThumbnailUrl}
	}
	return out
}

func outboundTo(m *Outbound) *pb.OutboundMessage {
	out := &pb.OutboundMessage{IdempotencyKey: m.IdempotencyKey, ConversationKey: m.ConversationKey, To: identityTo(m.To),
		Type: m.Type, Text: m.Text, Attachments: attachmentsTo(m.Attachments), ReplyTo: m.ReplyTo, Metadata: m.Metadata}
	for _, b := range m.Buttons {
		out.Buttons = append(out.Buttons, &pb.Button{Id: b.ID, Title: b.Title, Url: b.URL, Payload: b.Payload})
	}
	if m.Template != nil {
		out.Template = &pb.Template{Name: m.Template.Name, Language: m.Template.Language, Params: m.Template.Params}
	}
	return out
}

func outboundFrom(p *pb.OutboundMessage) *Outbound {
	m := &Outbound{IdempotencyKey: p.IdempotencyKey, ConversationKey: p.ConversationKey, To: identityFrom(p.To),
		Type: p.Type, Text: p.Text, Attachments: attachmentsFrom(p.Attachments), ReplyTo: p.ReplyTo, Metadata: p.Metadata}
	for _, b := range p.Buttons {
		m.Buttons = append(m.Buttons, Button{ID: b.Id, Title: b.Title, URL: b.Url, Payload: b.Payload})
	}
	if p.Template != nil {
		m.Template = &Template{Name: p.Template.Name, Language: p.Template.Language, Params: p.Template.Params}
	}
	return m
}

// ---- crm

func contactTo(c *Contact) *pb.Contact {
	out := &pb.Contact{Id: c.ID, Name: c.Name, Phone: c.Phone, Email: c.Email, OwnerId: c.OwnerID, Facts: factsTo(c.Facts),
		Score: int32(c.Score), Tier: c.Tier, ResetScore: c.ResetScore, SourceChannel: c.SourceChannel, Campaign: c.Campaign,
		Tags: c.Tags, Properties: c.Properties, Url: c.URL, CreatedAt: tsTo(c.CreatedAt), UpdatedAt: tsTo(c.UpdatedAt)}
	for _, i := range c.Identities {
		out.Identities = append(out.Identities, identityTo(i))
	}
	return out
}

func contactFrom(p *pb.Contact) *Contact {
	if p == nil {
		return &Contact{}
	}
	c := &Contact{ID: p.Id, Name: p.Name, Phone: p.Phone, Email: p.Email, OwnerID: p.OwnerId, Facts: factsFrom(p.Facts),
		Score: int(p.Score), Tier: p.Tier, ResetScore: p.ResetScore, SourceChannel: p.SourceChannel, Campaign: p.Campaign,
		Tags: p.Tags, Properties: p.Properties, URL: p.Url, CreatedAt: tsFrom(p.CreatedAt), UpdatedAt: tsFrom(p.UpdatedAt)}
	for _, i := range p.Identities {
		c.Identities = append(c.Identities, identityFrom(i))
	}
	return c
}

func noteTo(n *Note) *pb.Note {
	return &pb.Note{Id: n.ID, ContactId: n.ContactID, DealId: n.DealID, Body: n.Body, Author: n.Author, CreatedAt: tsTo(n.CreatedAt)}
}

func noteFrom(p *pb.Note) *Note {
	if p == nil {
		return &Note{}
	}
	return &Note{ID: p.Id, ContactID: p.ContactId, DealID: p.DealId, Body: p.Body, Author: p.Author, CreatedAt: tsFrom(p.CreatedAt)}
}

func dealTo(d *Deal) *pb.Deal {
	return &pb.Deal{Id: d.ID, ContactId: d.ContactID, Name: d.Name, Pipeline: d.Pipeline, Stage: d.Stage, Amount: d.Amount,
		Currency: d.Currency, OwnerId: d.OwnerID, Properties: d.Properties, Url: d.URL}
}

func dealFrom(p *pb.Deal) *Deal {
	if p == nil {
		return &Deal{}
	}
	return &Deal{ID: p.Id, ContactID: p.ContactId, Name: p.Name, Pipeline: p.Pipeline, Stage: p.Stage, Amount: p.Amount,
		Currency: p.Currency, OwnerID: p.OwnerId, Properties: p.Properties, URL: p.Url}
}

func taskTo(t *Task) *pb.Task {
	return &pb.Task{Id: t.ID, ContactId: t.ContactID, DealId: t.DealID, OwnerId: t.OwnerID, Title: t.Title, Body: t.Body,
		Type: t.Type, Priority: t.Priority, DueAt: tsTo(t.DueAt), Status: t.Status}
}

func taskFrom(p *pb.Task) *Task {
	if p == nil {
		return &Task{}
	}
	return &Task{ID: p.Id, ContactID: p.ContactId, DealID: p.DealId, OwnerID: p.OwnerId, Title: p.Title, Body: p.Body,
		Type: p.Type, Priority: p.Priority, DueAt: tsFrom(p.DueAt), Status: p.Status}
}

// ---- llm

func generateRequestTo(r *GenerateRequest) *pb.GenerateRequest {
	out := &pb.GenerateRequest{IdempotencyKey: r.IdempotencyKey, ConversationKey: r.ConversationKey, System: r.System,
		Context: r.Context, OutputSchema: r.OutputSchema, ModelHint: r.ModelHint, MaxTokens: int32(r.MaxTokens),
		Temperature: r.Temperature, TimeoutMs: r.Timeout.Milliseconds(), Metadata: r.Metadata}
	out.History = make([]*pb.Turn, len(r.History))
	for i, t := range r.History {
		out.History[i] = &pb.Turn{Role: t.Role, Text: t.Text, At: tsTo(t.At)}
	}
	return out
}

func generateRequestFrom(p *pb.GenerateRequest) *GenerateRequest {
	r := &GenerateRequest{IdempotencyKey: p.IdempotencyKey, ConversationKey: p.ConversationKey, System: p.System,
		Context: p.Context, OutputSchema: p.OutputSchema, ModelHint: p.ModelHint, MaxTokens: int(p.MaxTokens),
		Temperature: p.Temperature, Timeout: time.Duration(p.TimeoutMs) * time.Millisecond, Metadata: p.Metadata}
	r.History = make([]Turn, len(p.History))
	for i, t := range p.History {
		r.History[i] = Turn{Role: t.Role, Text: t.Text, At: tsFrom(t.At)}
	}
	return r
}

func generateResponseTo(r *GenerateResponse) *pb.GenerateResponse {
	u := r.Usage
	return &pb.GenerateResponse{Text: r.Text, Structured: r.Structured, Model: r.Model, StopReason: r.StopReason,
		Fallback: r.Fallback, FallbackReason: r.FallbackReason,
		Usage: &pb.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CacheReadTokens: u.CacheReadTokens,
			CacheWriteTokens: u.CacheWriteTokens, CostUsd: u.CostUSD}}
}

func generateResponseFrom(p *pb.GenerateResponse) *GenerateResponse {
	r := &GenerateResponse{Text: p.Text, Structured: p.Structured, Model: p.Model, StopReason: p.StopReason,
		Fallback: p.Fallback, FallbackReason: p.FallbackReason}
	if u := p.Usage; u != nil {
		r.Usage = Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CacheReadTokens: u.CacheReadTokens,
			CacheWriteTokens: u.CacheWriteTokens, CostUSD: u.CostUsd}
	}
	return r
}
