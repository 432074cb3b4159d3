-- Task templates registered in the database, so every process sees the same ones.
--
-- `tasker.task_templates` holds each template under its identity (namespace, name, version)
-- as the template's own JSON form (`TaskTemplate.to_json`, every default explicit), with a
-- SHA-256 of that JSON's canonical text (keys sorted, no whitespace), when and by whom it
-- was registered, and the file it came from. A registered version is immutable: registering
-- the same content again changes nothing, different content under the same version is
-- refused by the code (`tasker_trio.store.postgres.templates`), and an UPDATE of the
-- content is refused here, since running tasks were built from it.
--
-- `tasker.namespaces` lists every namespace a template was registered in: the queues a
-- worker serves when it is not told which (`worker` without `--namespace`).

CREATE TABLE tasker.namespaces (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,28}$'),
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text NOT NULL
);

CREATE TABLE tasker.task_templates (
    namespace     text NOT NULL REFERENCES tasker.namespaces (name),
    name          text NOT NULL,
    version       text NOT NULL,
    template      jsonb NOT NULL,
    content_hash  text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text NOT NULL,
    source        text,
    PRIMARY KEY (namespace, name, version)
);

CREATE FUNCTION tasker.refuse_template_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.template IS DISTINCT FROM OLD.template
       OR NEW.content_hash IS DISTINCT FROM OLD.content_hash
       OR (NEW.namespace, NEW.name, NEW.version) IS DISTINCT FROM (OLD.namespace, OLD.name, OLD.version)
    THEN
        RAISE EXCEPTION 'task template %/%@% is registered and immutable; register a new version',
            OLD.namespace, OLD.name, OLD.version
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER task_templates_immutable BEFORE UPDATE ON tasker.task_templates
    FOR EACH ROW EXECUTE FUNCTION tasker.refuse_template_change();
