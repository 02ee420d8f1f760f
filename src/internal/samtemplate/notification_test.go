package samtemplate

import (
	"reflect"
	"strings"
	"testing"
)

const notificationTemplate = `
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - Event: s3:ObjectCreated:*
            Queue: !GetAtt Queue.Arn
            Filter:
              S3Key:
                Rules:
                  - {Name: Prefix, Value: processed/}
                  - {Name: suffix, Value: .csv}
        TopicConfigurations:
          - Event: s3:ObjectRemoved:*
            Topic: arn:aws:sns:eu-west-1:123456789012:external
  Queue: {Type: AWS::SQS::Queue}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Raw:
          Type: S3
          Properties:
            Bucket: !Ref Bucket
            Events: [s3:ObjectCreated:Put, s3:ObjectCreated:Copy]
            Filter:
              S3Key:
                Rules:
                  - {Name: prefix, Value: raw/}
        Tick:
          Type: Schedule
          Properties: {Schedule: rate(1 day)}
`

func TestNotificationsOfSmallTemplate(t *testing.T) {
	tpl := mustParse(t, notificationTemplate)
	got, err := tpl.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	want := []Notification{
		{Bucket: "Bucket", Target: "arn:aws:sns:eu-west-1:123456789012:external", Events: []string{"s3:ObjectRemoved:*"}},
		{Bucket: "Bucket", Target: "Queue", TargetType: "AWS::SQS::Queue", Events: []string{"s3:ObjectCreated:*"}, Prefix: "processed/", Suffix: ".csv"},
		{Bucket: "Bucket", Target: "Fn", TargetType: FunctionType, Events: []string{"s3:ObjectCreated:Put", "s3:ObjectCreated:Copy"}, Prefix: "raw/"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Notifications() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestNotificationMatches(t *testing.T) {
	n := Notification{Events: []string{"s3:ObjectCreated:*"}, Prefix: "processed/", Suffix: ".csv"}
	tests := []struct {
		event, key string
		want       bool
	}{
		{"ObjectCreated:Put", "processed/characters/page-0001.csv", true},
		{"s3:ObjectCreated:CompleteMultipartUpload", "processed/x.csv", true},
		{"ObjectRemoved:Delete", "processed/x.csv", false},
		{"ObjectCreated:Put", "processed/x.csv.tmp", false},
		{"ObjectCreated:Put", "exports/processed/x.csv", false},
	}
	for _, tt := range tests {
		if got := n.Matches(tt.event, tt.key); got != tt.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tt.event, tt.key, got, tt.want)
		}
	}
}

func TestNotificationsRejectsWhatItCannotRead(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"bucket outside the template", `
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        E: {Type: S3, Properties: {Bucket: my-bucket, Events: s3:ObjectCreated:*}}`, "must be a Ref"},
		{"filter from a parameter", `
Parameters:
  P: {Type: String, Default: raw/}
Resources:
  B: {Type: AWS::S3::Bucket}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        E:
          Type: S3
          Properties:
            Bucket: !Ref B
            Events: s3:ObjectCreated:*
            Filter: {S3Key: {Rules: [{Name: prefix, Value: !Ref P}]}}`, "literal Name and Value"},
		{"conditional notification configuration", `
Conditions:
  C: !Equals [a, a]
Resources:
  B:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration: !If [C, {}, !Ref AWS::NoValue]`, "must be a literal mapping"},
		{"unknown filter rule", `
Resources:
  Q: {Type: AWS::SQS::Queue}
  B:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - {Event: s3:ObjectCreated:*, Queue: !GetAtt Q.Arn, Filter: {S3Key: {Rules: [{Name: infix, Value: x}]}}}`, "neither prefix nor suffix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := mustParse(t, tt.yaml)
			_, err := tpl.Notifications()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
