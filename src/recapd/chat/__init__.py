"""Chat sources: where posts come from (recapd's own workspace, or a Mattermost server)."""
