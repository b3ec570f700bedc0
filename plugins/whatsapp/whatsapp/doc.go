// Package whatsapp is the WhatsApp Business Cloud API channel connector:
// webhook verification and parsing into normalized events (messages,
// delivery statuses, and the coexistence fields smb_message_echoes,
// smb_app_state_sync and history), and sending text, media, interactive and
// template messages with the 24-hour customer-service window, a client-side
// throughput limit and idempotent sends.
//
// It lives outside the main package so the hub's end-to-end tests and the
// sandbox can run it in-process; plugins/whatsapp/main.go only serves it.
//
// Wire format: ../../shared/reference/whatsapp-cloud.md (Graph API errors,
// webhook payloads, X-Hub-Signature-256).
package whatsapp
