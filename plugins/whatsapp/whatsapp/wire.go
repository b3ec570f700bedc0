package whatsapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Inbound wire types: Meta's webhook notification, only the fields we read.
// Arrays of messages, statuses and the like stay json.RawMessage first so
// each event can carry its own raw bytes for audit.

type notification struct {
	Object string       `json:"object"`
	Entry  []notifEntry `json:"entry"`
}

type notifEntry struct {
	ID      string        `json:"id"`
	Changes []notifChange `json:"changes"`
}

type notifChange struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

type changeValue struct {
	MessagingProduct string            `json:"messaging_product"`
	Metadata         valueMetadata     `json:"metadata"`
	Contacts         []waContact       `json:"contacts"`
	Messages         []json.RawMessage `json:"messages"`
	Statuses         []json.RawMessage `json:"statuses"`
	Errors           []waError         `json:"errors"`
	MessageEchoes    []json.RawMessage `json:"message_echoes"`
	StateSync        []json.RawMessage `json:"state_sync"`
	History          []historyChunk    `json:"history"`
}

type valueMetadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

type waContact struct {
	Profile struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"profile"`
	WaID         string `json:"wa_id"`
	UserID       string `json:"user_id"`
	ParentUserID string `json:"parent_user_id"`
}

type waMessage struct {
	From           string            `json:"from"`
	FromUserID     string            `json:"from_user_id"`
	To             string            `json:"to"`
	ToUserID       string            `json:"to_user_id"`
	ID             string            `json:"id"`
	Timestamp      flexInt           `json:"timestamp"`
	Type           string            `json:"type"`
	GroupID        string            `json:"group_id"`
	Context        *waContext        `json:"context"`
	Text           *waText           `json:"text"`
	Image          *waMedia          `json:"image"`
	Video          *waMedia          `json:"video"`
	Audio          *waMedia          `json:"audio"`
	Document       *waMedia          `json:"document"`
	Sticker        *waMedia          `json:"sticker"`
	Location       *waLocation       `json:"location"`
	Contacts       []waSharedContact `json:"contacts"`
	Interactive    *waInteractive    `json:"interactive"`
	Button         *waButton         `json:"button"`
	Reaction       *waReaction       `json:"reaction"`
	Order          *waOrder          `json:"order"`
	System         *waSystem         `json:"system"`
	Referral       *waReferral       `json:"referral"`
	Errors         []waError         `json:"errors"`
	HistoryContext *waHistoryContext `json:"history_context"`
}

type waContext struct {
	From                string `json:"from"`
	ID                  string `json:"id"`
	Forwarded           bool   `json:"forwarded"`
	FrequentlyForwarded bool   `json:"frequently_forwarded"`
}

type waText struct {
	Body string `json:"body"`
}

type waMedia struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
	URL      string `json:"url"`
	Voice    bool   `json:"voice"`
	Animated bool   `json:"animated"`
}

type waLocation struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name"`
	Address   string  `json:"address"`
	URL       string  `json:"url"`
}

type waSharedContact struct {
	Name struct {
		FormattedName string `json:"formatted_name"`
		FirstName     string `json:"first_name"`
		LastName      string `json:"last_name"`
	} `json:"name"`
	Phones []struct {
		Phone string `json:"phone"`
		WaID  string `json:"wa_id"`
		Type  string `json:"type"`
	} `json:"phones"`
	Emails []struct {
		Email string `json:"email"`
	} `json:"emails"`
}

type waInteractive struct {
	Type        string `json:"type"`
	ButtonReply *struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	} `json:"button_reply"`
	ListReply *struct {
		ID          string `json:"id"`
		Title       string `json:"title"`
		Description string `json:"description"`
	} `json:"list_reply"`
	NfmReply *struct {
		Name         string `json:"name"`
		Body         string `json:"body"`
		ResponseJSON string `json:"response_json"`
	} `json:"nfm_reply"`
}

type waButton struct {
	Payload string `json:"payload"`
	Text    string `json:"text"`
}

type waReaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

type waOrder struct {
	CatalogID string `json:"catalog_id"`
	Text      string `json:"text"`
	// Items are only counted: their price and quantity types vary between
	// samples (string or number), and a strict decode would drop the order.
	ProductItems []json.RawMessage `json:"product_items"`
}

type waSystem struct {
	Body     string `json:"body"`
	Type     string `json:"type"`
	WaID     string `json:"wa_id"`
	NewWaID  string `json:"new_wa_id"`
	Customer string `json:"customer"`
}

type waReferral struct {
	SourceURL  string `json:"source_url"`
	SourceID   string `json:"source_id"`
	SourceType string `json:"source_type"`
	Headline   string `json:"headline"`
	Body       string `json:"body"`
	CtwaClid   string `json:"ctwa_clid"`
}

type waHistoryContext struct {
	Status string `json:"status"`
	FromMe bool   `json:"from_me"`
}

// waError is an error object inside a webhook (message, status or
// account-level errors).
type waError struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
	Href string `json:"href"`
}

type waStatus struct {
	ID                    string    `json:"id"`
	Status                string    `json:"status"`
	Timestamp             flexInt   `json:"timestamp"`
	RecipientID           string    `json:"recipient_id"`
	RecipientUserID       string    `json:"recipient_user_id"`
	RecipientType         string    `json:"recipient_type"`
	BizOpaqueCallbackData string    `json:"biz_opaque_callback_data"`
	Errors                []waError `json:"errors"`
	Conversation          *struct {
		ID     string `json:"id"`
		Origin struct {
			Type string `json:"type"`
		} `json:"origin"`
	} `json:"conversation"`
	Pricing *struct {
		Billable     bool   `json:"billable"`
		PricingModel string `json:"pricing_model"`
		Category     string `json:"category"`
	} `json:"pricing"`
}

type waStateSync struct {
	Type    string `json:"type"`
	Contact struct {
		FullName    string `json:"full_name"`
		FirstName   string `json:"first_name"`
		PhoneNumber string `json:"phone_number"`
	} `json:"contact"`
	Action   string `json:"action"`
	Metadata struct {
		Timestamp flexInt `json:"timestamp"`
	} `json:"metadata"`
}

type historyChunk struct {
	Metadata struct {
		Phase      flexInt `json:"phase"`
		ChunkOrder flexInt `json:"chunk_order"`
		Progress   flexInt `json:"progress"`
	} `json:"metadata"`
	Threads []struct {
		ID       string            `json:"id"`
		Messages []json.RawMessage `json:"messages"`
	} `json:"threads"`
	Errors []waError `json:"errors"`
}

// flexInt decodes Meta's integers, which arrive as decimal strings
// ("1697043223") in most places and as JSON numbers in a few samples.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*f = 0
			return nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// A float such as 1.0 is still accepted; anything else is malformed.
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		n = int64(fl)
	}
	*f = flexInt(n)
	return nil
}

// unixTime turns Meta's seconds into a UTC time; 0 stays the zero time.
func unixTime(s flexInt) time.Time {
	if s <= 0 || s > 1<<40 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}
