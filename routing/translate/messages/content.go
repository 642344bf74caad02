package messages

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// block is any Anthropic content block; which fields matter depends on Type.
// Keys this package does not read (citations, cache_control, signature) are
// ignored by the decoder.
type block struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text"`
	Source    *source         `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	Title     string          `json:"title"`
}

// source is an image or document source.
type source struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

// messages translates the conversation.
func messages(raw json.RawMessage) ([]chatMessage, *Error) {
	var list []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := decode(raw, "messages", &list); err != nil {
		return nil, err
	}
	out := make([]chatMessage, 0, len(list))
	for i, m := range list {
		param := "messages." + strconv.Itoa(i)
		if len(m.Content) == 0 || isNull(m.Content) {
			return nil, invalid(param+".content", "Field required.")
		}
		if m.Role != "user" && m.Role != "assistant" {
			return nil, invalid(param+".role", "Input should be 'user' or 'assistant'.")
		}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			out = append(out, chatMessage{Role: m.Role, Content: s})
			continue
		}
		var blocks []block
		if err := json.Unmarshal(m.Content, &blocks); err != nil {
			return nil, invalid(param+".content", "Input should be a string or an array of content blocks.")
		}
		var msgs []chatMessage
		var err *Error
		if m.Role == "user" {
			msgs, err = userMessage(blocks, param+".content")
		} else {
			msgs, err = assistantMessage(blocks, param+".content")
		}
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// userMessage translates a user turn: its tool results first, as tool
// messages (OpenAI requires them right after the assistant's tool calls),
// then one user message with the rest.
func userMessage(blocks []block, param string) ([]chatMessage, *Error) {
	var out []chatMessage
	var toolImages, parts []part
	for j, b := range blocks {
		bp := param + "." + strconv.Itoa(j)
		switch b.Type {
		case "tool_result":
			msg, images, err := toolResult(b, bp)
			if err != nil {
				return nil, err
			}
			out = append(out, msg)
			toolImages = append(toolImages, images...)
		default:
			p, err := userPart(b, bp)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
	}
	parts = append(toolImages, parts...)
	switch {
	case len(parts) == 1 && parts[0].Text != nil:
		out = append(out, chatMessage{Role: "user", Content: *parts[0].Text})
	case len(parts) > 0:
		out = append(out, chatMessage{Role: "user", Content: parts})
	case len(out) == 0:
		out = append(out, chatMessage{Role: "user", Content: ""}) // "content": [] is allowed by Anthropic
	}
	return out, nil
}

// userPart translates a text, image or document block of a user turn.
func userPart(b block, param string) (part, *Error) {
	switch b.Type {
	case "text":
		if b.Text == nil {
			return part{}, invalid(param+".text", "Field required.")
		}
		return textPart(*b.Text), nil
	case "image":
		return image(b, param)
	case "document":
		return document(b, param)
	case "":
		return part{}, invalid(param+".type", "Field required.")
	}
	return part{}, unsupported(param + " (a " + strconv.Quote(b.Type) + " block)")
}

// image translates an image block's base64 or url source.
func image(b block, param string) (part, *Error) {
	if b.Source == nil {
		return part{}, invalid(param+".source", "Field required.")
	}
	switch b.Source.Type {
	case "base64":
		if b.Source.MediaType == "" || b.Source.Data == "" {
			return part{}, invalid(param+".source", "media_type and data are required.")
		}
		return part{Type: "image_url", ImageURL: &imageURL{URL: "data:" + b.Source.MediaType + ";base64," + b.Source.Data}}, nil
	case "url":
		if b.Source.URL == "" {
			return part{}, invalid(param+".source.url", "Field required.")
		}
		return part{Type: "image_url", ImageURL: &imageURL{URL: b.Source.URL}}, nil
	}
	return part{}, unsupported(param + ".source.type " + strconv.Quote(b.Source.Type))
}

// document translates a base64 PDF into a file part and a plain-text
// document into a text part.
func document(b block, param string) (part, *Error) {
	if b.Source == nil {
		return part{}, invalid(param+".source", "Field required.")
	}
	switch {
	case b.Source.Type == "base64" && b.Source.MediaType == "application/pdf" && b.Source.Data != "":
		name := b.Title
		if name == "" {
			name = "document.pdf"
		}
		return part{Type: "file", File: &file{Filename: name, FileData: "data:application/pdf;base64," + b.Source.Data}}, nil
	case b.Source.Type == "text":
		return textPart(b.Source.Data), nil
	}
	return part{}, unsupported(param + ".source (only base64 PDF and text documents translate)")
}

// toolResult translates a tool_result block into a tool message; images in
// it are returned to go into the following user message.
func toolResult(b block, param string) (chatMessage, []part, *Error) {
	if b.ToolUseID == "" {
		return chatMessage{}, nil, invalid(param+".tool_use_id", "Field required.")
	}
	msg := chatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: ""}
	if len(b.Content) == 0 || isNull(b.Content) {
		return msg, nil, nil
	}
	var s string
	if json.Unmarshal(b.Content, &s) == nil {
		msg.Content = s
		return msg, nil, nil
	}
	var inner []block
	if err := json.Unmarshal(b.Content, &inner); err != nil {
		return chatMessage{}, nil, invalid(param+".content", "Input should be a string or an array of blocks.")
	}
	var texts []string
	var images []part
	for k, ib := range inner {
		ip := param + ".content." + strconv.Itoa(k)
		switch ib.Type {
		case "text":
			if ib.Text == nil {
				return chatMessage{}, nil, invalid(ip+".text", "Field required.")
			}
			texts = append(texts, *ib.Text)
		case "image":
			p, err := image(ib, ip)
			if err != nil {
				return chatMessage{}, nil, err
			}
			images = append(images, p)
		default:
			return chatMessage{}, nil, unsupported(ip + " (a " + strconv.Quote(ib.Type) + " block in a tool result)")
		}
	}
	msg.Content = strings.Join(texts, "\n")
	return msg, images, nil
}

// assistantMessage translates an assistant turn: text blocks concatenated
// into content, tool_use blocks into tool_calls.
func assistantMessage(blocks []block, param string) ([]chatMessage, *Error) {
	msg := chatMessage{Role: "assistant"}
	var text strings.Builder
	hasText := false
	for j, b := range blocks {
		bp := param + "." + strconv.Itoa(j)
		switch b.Type {
		case "text":
			if b.Text == nil {
				return nil, invalid(bp+".text", "Field required.")
			}
			text.WriteString(*b.Text)
			hasText = true
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return nil, invalid(bp, "id and name are required.")
			}
			args := "{}"
			if len(b.Input) > 0 && !isNull(b.Input) {
				var c bytes.Buffer
				if json.Compact(&c, b.Input) != nil || c.Len() == 0 || c.Bytes()[0] != '{' {
					return nil, invalid(bp+".input", "Input should be an object.")
				}
				args = c.String()
			}
			msg.ToolCalls = append(msg.ToolCalls, toolCall{ID: b.ID, Type: "function", Function: functionCall{Name: b.Name, Arguments: args}})
		case "thinking", "redacted_thinking":
			// Dropped: see the package documentation.
		case "":
			return nil, invalid(bp+".type", "Field required.")
		default:
			return nil, unsupported(bp + " (a " + strconv.Quote(b.Type) + " block)")
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		msg.Content = text.String()
	}
	return []chatMessage{msg}, nil
}
