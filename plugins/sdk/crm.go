package sdk

import (
	"context"
	"time"
)

// CRM keeps contacts, notes, deals and tasks.
type CRM interface {
	Plugin
	// UpsertContact finds the contact by any of its identities (channel user
	// id, phone, email) and updates it, or creates it. The same person seen
	// on two channels becomes one contact. The score only rises unless
	// Contact.ResetScore is set.
	UpsertContact(ctx context.Context, req *UpsertContactRequest) (*UpsertContactResult, error)
	// GetContact reads a contact by id, or by identity when id is empty.
	// A missing contact is ErrNotFound.
	GetContact(ctx context.Context, id string, identity *Identity) (*Contact, error)
	AddNote(ctx context.Context, idempotencyKey string, note *Note) (*Note, error)
	// UpsertDeal creates the contact's deal or moves it to a new stage.
	UpsertDeal(ctx context.Context, idempotencyKey string, deal *Deal) (*Deal, error)
	CreateTask(ctx context.Context, idempotencyKey string, task *Task) (*Task, error)
}

// Contact is a person in the CRM.
type Contact struct {
	ID            string
	Identities    []Identity
	Name          string
	Phone         string // E.164
	Email         string
	OwnerID       string // the salesperson who owns the contact
	Facts         LeadFacts
	Score         int
	Tier          string
	ResetScore    bool // on upsert: allow the score to go down
	SourceChannel string
	Campaign      string
	Tags          []string
	Properties    map[string]string
	URL           string // deep link to the record in the CRM's UI
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// UpsertContactRequest asks to create or update a contact.
type UpsertContactRequest struct {
	IdempotencyKey string
	Contact        Contact
}

// UpsertContactResult is the stored contact.
type UpsertContactResult struct {
	Contact Contact
	Created bool
}

// Note is a free-text note on a contact (and optionally a deal).
type Note struct {
	ID        string
	ContactID string
	DealID    string
	Body      string
	Author    string
	CreatedAt time.Time
}

// Deal is an opportunity in a pipeline.
type Deal struct {
	ID         string
	ContactID  string
	Name       string
	Pipeline   string
	Stage      string
	Amount     float64
	Currency   string
	OwnerID    string
	Properties map[string]string
	URL        string
}

// Task is a follow-up for a person: a call, an email, a to-do.
type Task struct {
	ID        string
	ContactID string
	DealID    string
	OwnerID   string
	Title     string
	Body      string
	Type      string // call, email, todo
	Priority  string // low, medium, high
	DueAt     time.Time
	Status    string
}
