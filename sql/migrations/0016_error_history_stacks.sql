-- A job's error history keeps every failure, but only the ten most recent keep their stack trace
-- (up to 2,000 characters each). With up to 1,000 attempts per budget and a fresh budget on every
-- requeue, a history of whole stacks grew without bound and was copied whole into every dead letter.
create function leasehold.append_error(history jsonb, error jsonb) returns jsonb
language sql immutable parallel safe as $$
  select case
    when jsonb_array_length(history) < 10 then history || jsonb_build_array(error)
    else (select jsonb_agg(case when e.n <= jsonb_array_length(history) - 9 then e.v - 'stack' else e.v end order by e.n)
          from jsonb_array_elements(history) with ordinality as e(v, n)) || jsonb_build_array(error)
  end
$$;
