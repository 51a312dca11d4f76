-- Names used to be checked with re.match and '$', which lets a trailing newline through (an
-- organization "admin\n" passed for "admin"). Applying this migration runs, once, the check of the
-- names already stored (shared/db/stored_names.py, called by shared/db/migrate.py): a warning lists
-- every stored name that breaks its rule. `quayside check-names` runs the same check on demand.
-- The schema only gains comments naming each rule.
COMMENT ON COLUMN namespace.name IS 'users and organizations: shared.auth.names.check_namespace_name';
COMMENT ON COLUMN app_user.username IS 'the name of the user''s namespace: shared.auth.names.check_namespace_name';
COMMENT ON COLUMN robot.shortname IS 'shared.auth.names.check_robot_shortname';
COMMENT ON COLUMN team.name IS 'shared.auth.names.check_team_name';
COMMENT ON COLUMN repository.name IS '<namespace>/<name> is a repository name: shared.oci.names.is_valid_repository_name';
COMMENT ON COLUMN tag.name IS 'shared.oci.names.is_valid_tag';
COMMENT ON COLUMN label.key IS 'labels of source api: shared.oci.names.is_valid_label_key; manifest annotations: any text';
