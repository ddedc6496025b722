-- Answer links are now signed with a key derived from the master key (responses.rs): the old
-- link key, which sat in the database where a backup could mint links, is destroyed.
DELETE FROM instance_secrets WHERE name = 'answer-link';
