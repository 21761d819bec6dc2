/*
 * Fills a compiled XForm with JavaRosa, the form engine of ODK Collect, the way Collect does, and prints what
 * happened as JSON. Compiled and run by tests/support/javarosa.py against pyxform's ODK_Validate.jar, which
 * bundles JavaRosa (org.javarosa.*, 5.x) and Jackson.
 *
 *   java -Duser.timezone=Asia/Ho_Chi_Minh -cp ODK_Validate.jar:<classes> CollectFill form.xml < fills.json
 *
 * stdin: {"fills": [script, ...]}; each script is
 *   {"answers": {"question_name": "value" | ["attempt 1", "attempt 2", ...], ...},
 *    "repeats": {"repeat_name": [{"question_name": ...}, ...]}}
 * A question inside a repeat instance takes its answer from repeats[name][instance]; other questions from
 * "answers". A list of values is a collaborator correcting an answer: each is tried in turn until the engine
 * accepts one. Select answers are choice values (select_multiple space-separated) and must be among the choices
 * the engine offers at that moment (choice filters apply).
 *
 * For each script, in order (as Collect does for a new instance):
 *   1. parse the form and initialise a NEW instance (preloads: start, today, deviceid, instanceID; setvalue on
 *      odk-instance-first-load, e.g. a visit date defaulting to today());
 *   2. step through the events the engine shows (irrelevant questions and groups are skipped by the engine);
 *      answer a question only when the engine shows it; a question the script does not answer keeps its
 *      current value (a default) and is checked like Collect checks it on swiping forward (required,
 *      constraint); an "add another <repeat>?" prompt is answered "add" while the script has more instances of
 *      that repeat and "do not add" otherwise, and an instance beyond the script's (pyxform puts a first one in
 *      the model) is removed as with Collect's "remove group" — unless the repeat has a count (jr:count):
 *      then the engine alone creates the instances and the walk goes through each one it shows;
 *   3. finalise: validate the whole instance (constraints and required, markCompleted), run the end-of-form
 *      processing (end timestamp), serialise the instance XML (non-relevant nodes left out, as Collect sends).
 *
 * stdout: a JSON list, one result per script:
 *   {"status": "complete" | "stuck" | "invalid" | "error",
 *    "xml": "<instance…>" (complete only), "at": path where it stopped, "reason": …, "message": …,
 *    "events": [{"event": "question"|"note"|"repeat"|"new_repeat_prompt", "path", "name", "value", "result"}],
 *    "unused": ["name", …] (scripted answers the engine never asked for)}
 */

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.javarosa.core.model.Constants;
import org.javarosa.core.model.FormDef;
import org.javarosa.core.model.FormIndex;
import org.javarosa.core.model.GroupDef;
import org.javarosa.core.model.SelectChoice;
import org.javarosa.core.model.ValidateOutcome;
import org.javarosa.core.model.data.AnswerDataFactory;
import org.javarosa.core.model.data.IAnswerData;
import org.javarosa.core.model.data.SelectMultiData;
import org.javarosa.core.model.data.SelectOneData;
import org.javarosa.core.model.data.UncastData;
import org.javarosa.core.model.data.helper.Selection;
import org.javarosa.core.model.instance.InstanceInitializationFactory;
import org.javarosa.core.model.instance.TreeReference;
import org.javarosa.core.services.IPropertyManager;
import org.javarosa.core.services.PropertyManager;
import org.javarosa.core.services.properties.IPropertyRules;
import org.javarosa.form.api.FormEntryController;
import org.javarosa.form.api.FormEntryModel;
import org.javarosa.form.api.FormEntryPrompt;
import org.javarosa.model.xform.XFormSerializingVisitor;
import org.javarosa.model.xform.XFormsModule;
import org.javarosa.xform.util.XFormUtils;

public class CollectFill {
    static final ObjectMapper JSON = new ObjectMapper();

    /** What Collect registers for the deviceid / username preloads. */
    static final class Properties implements IPropertyManager {
        public List<String> getProperty(String name) {
            String v = getSingularProperty(name);
            return v == null ? null : Collections.singletonList(v);
        }

        public String getSingularProperty(String name) {
            switch (name) {
                case "deviceid":
                    return "collect:javarosa-test";
                case "username":
                    return "ctv_test";
                default:
                    return null;
            }
        }

        public void setProperty(String name, String value) {}

        public void setProperty(String name, List<String> values) {}

        public void addRules(IPropertyRules rules) {}

        public List<IPropertyRules> getRules() {
            return new ArrayList<>();
        }
    }

    /** The walk stopped where a collaborator would be stuck (constraint, required, choice not offered). */
    static final class Stuck extends Exception {
        final String at;
        final String reason;

        Stuck(String at, String reason, String message) {
            super(message);
            this.at = at;
            this.reason = reason;
        }
    }

    public static void main(String[] args) throws Exception {
        new XFormsModule().registerModule();
        PropertyManager.setPropertyManager(new Properties());
        byte[] form = Files.readAllBytes(Paths.get(args[0]));
        JsonNode input = JSON.readTree(System.in);
        ArrayNode out = JSON.createArrayNode();
        for (JsonNode script : input.get("fills")) {
            out.add(fill(form, script));
        }
        System.out.write(JSON.writeValueAsBytes(out));
        System.out.flush();
    }

    static ObjectNode fill(byte[] form, JsonNode script) {
        ObjectNode result = JSON.createObjectNode();
        ArrayNode events = result.putArray("events");
        Set<String> unused = scriptedNames(script);
        try {
            FormDef fd = XFormUtils.getFormFromInputStream(new ByteArrayInputStream(form));
            FormEntryModel model = new FormEntryModel(fd);
            FormEntryController fec = new FormEntryController(model);
            // A new instance, as Collect's FormLoaderTask starts one: preloads and odk-instance-first-load.
            fd.initialize(true, new InstanceInitializationFactory());
            walk(fec, script, events, unused);
            ValidateOutcome bad = fd.validate(true);
            if (bad != null) {
                result.put("status", "invalid");
                result.put("at", path(bad.failedPrompt.getReference()));
                result.put("reason", bad.outcome == FormEntryController.ANSWER_REQUIRED_BUT_EMPTY
                        ? "required" : "constraint");
            } else {
                fec.finalizeFormEntry();
                byte[] xml = new XFormSerializingVisitor().serializeInstance(fd.getInstance());
                result.put("status", "complete");
                result.put("xml", new String(xml, StandardCharsets.UTF_8));
            }
        } catch (Stuck s) {
            result.put("status", "stuck");
            result.put("at", s.at);
            result.put("reason", s.reason);
            result.put("message", s.getMessage());
        } catch (Exception e) {
            result.put("status", "error");
            result.put("message", e.toString());
        }
        ArrayNode u = result.putArray("unused");
        unused.forEach(u::add);
        return result;
    }

    static void walk(FormEntryController fec, JsonNode script, ArrayNode events, Set<String> unused)
            throws Stuck {
        FormEntryModel model = fec.getModel();
        int event = fec.stepToNextEvent();
        while (event != FormEntryController.EVENT_END_OF_FORM) {
            FormIndex index = model.getFormIndex();
            TreeReference ref = index.getReference();
            String name = ref.getNameLast();
            JsonNode instances = script.path("repeats").path(name);
            if (event == FormEntryController.EVENT_REPEAT) {
                GroupDef repeat = (GroupDef) model.getForm().getChild(index);
                boolean extra = instances.isArray() && ref.getMultLast() >= instances.size();
                if (extra && repeat.getCountReference() == null) {
                    // An instance the script does not have (pyxform puts a first one in the model): the
                    // collaborator removes it, as with Collect's "remove group"; the engine then asks again.
                    event(events, "repeat", ref).put("name", name).put("result", "delete");
                    event = fec.jumpToIndex(fec.deleteRepeat());
                    continue;
                }
                event(events, "repeat", ref).put("name", name);
            } else if (event == FormEntryController.EVENT_PROMPT_NEW_REPEAT) {
                boolean add = instances.isArray() && instances.size() > ref.getMultLast();
                event(events, "new_repeat_prompt", ref).put("name", name).put("result", add ? "add" : "skip");
                if (add) {
                    fec.newRepeat();
                }
            } else if (event == FormEntryController.EVENT_QUESTION) {
                question(fec, script, events, unused);
            }
            event = fec.stepToNextEvent();
        }
    }

    static void question(FormEntryController fec, JsonNode script, ArrayNode events, Set<String> unused)
            throws Stuck {
        FormEntryModel model = fec.getModel();
        FormIndex index = model.getFormIndex();
        TreeReference ref = index.getReference();
        FormEntryPrompt prompt = model.getQuestionPrompt();
        String name = ref.getNameLast();
        String at = path(ref);
        if (prompt.isReadOnly()) {
            event(events, "note", ref).put("name", name);
            return;
        }
        JsonNode scripted = answersFor(script, ref).get(name);
        if (scripted == null || scripted.isNull()) {
            // Not answered: Collect keeps what the widget shows (a default, or nothing) and checks it on swipe.
            IAnswerData current = prompt.getAnswerValue();
            int r = fec.answerQuestion(index, current, true);
            ObjectNode e = event(events, "question", ref).put("name", name);
            e.put("value", current == null ? null : current.uncast().getString());
            e.put("result", result(r));
            if (r != FormEntryController.ANSWER_OK) {
                throw new Stuck(at, result(r), constraintText(prompt, current));
            }
            return;
        }
        unused.remove(key(script, ref, name));
        List<String> attempts = new ArrayList<>();
        if (scripted.isArray()) {
            scripted.forEach(v -> attempts.add(v.asText()));
        } else {
            attempts.add(scripted.asText());
        }
        int r = FormEntryController.ANSWER_CONSTRAINT_VIOLATED;
        String message = null;
        for (String value : attempts) {
            IAnswerData data = answer(prompt, value);
            if (data == null) {
                event(events, "question", ref).put("name", name).put("value", value).put("result", "not_offered");
                throw new Stuck(at, "not_offered", "choice " + value + " is not offered");
            }
            r = fec.answerQuestion(index, data, true);
            message = r == FormEntryController.ANSWER_OK ? null : constraintText(prompt, data);
            event(events, "question", ref).put("name", name).put("value", value).put("result", result(r))
                    .put("message", message);
            if (r == FormEntryController.ANSWER_OK) {
                return;
            }
        }
        throw new Stuck(at, result(r), message);
    }

    /** The typed answer for the prompt, or null when a select does not offer the value. */
    static IAnswerData answer(FormEntryPrompt prompt, String value) {
        int control = prompt.getControlType();
        if (control == Constants.CONTROL_SELECT_ONE || control == Constants.CONTROL_SELECT_MULTI) {
            List<SelectChoice> choices = prompt.getSelectChoices();
            List<Selection> picked = new ArrayList<>();
            for (String v : value.trim().split("\\s+")) {
                SelectChoice found = null;
                for (SelectChoice c : choices) {
                    if (c.getValue().equals(v)) {
                        found = c;
                    }
                }
                if (found == null) {
                    return null;
                }
                picked.add(found.selection());
            }
            return control == Constants.CONTROL_SELECT_ONE
                    ? new SelectOneData(picked.get(0)) : new SelectMultiData(picked);
        }
        // Dates become local midnight in the JVM's time zone, as Collect's date widget stores them.
        return AnswerDataFactory.templateByDataType(prompt.getDataType()).cast(new UncastData(value));
    }

    static String constraintText(FormEntryPrompt prompt, IAnswerData data) {
        try {
            return prompt.getConstraintText(data);
        } catch (RuntimeException e) {
            return null;
        }
    }

    static String result(int r) {
        switch (r) {
            case FormEntryController.ANSWER_OK:
                return "ok";
            case FormEntryController.ANSWER_REQUIRED_BUT_EMPTY:
                return "required";
            case FormEntryController.ANSWER_CONSTRAINT_VIOLATED:
                return "constraint";
            default:
                return "answer_" + r;
        }
    }

    /** The answers object for a question: the innermost scripted repeat instance it sits in, else "answers". */
    static JsonNode answersFor(JsonNode script, TreeReference ref) {
        for (int i = ref.size() - 2; i >= 0; i--) {
            JsonNode instances = script.path("repeats").path(ref.getName(i));
            if (instances.isArray()) {
                JsonNode one = instances.path(ref.getMultiplicity(i));
                return one.isObject() ? one : JSON.createObjectNode();
            }
        }
        return script.path("answers");
    }

    static String key(JsonNode script, TreeReference ref, String name) {
        for (int i = ref.size() - 2; i >= 0; i--) {
            if (script.path("repeats").path(ref.getName(i)).isArray()) {
                return ref.getName(i) + "[" + ref.getMultiplicity(i) + "]/" + name;
            }
        }
        return name;
    }

    static Set<String> scriptedNames(JsonNode script) {
        Set<String> names = new LinkedHashSet<>();
        script.path("answers").fieldNames().forEachRemaining(names::add);
        Iterator<String> repeats = script.path("repeats").fieldNames();
        while (repeats.hasNext()) {
            String repeat = repeats.next();
            JsonNode instances = script.path("repeats").path(repeat);
            for (int i = 0; i < instances.size(); i++) {
                final int n = i;
                instances.get(i).fieldNames().forEachRemaining(q -> names.add(repeat + "[" + n + "]/" + q));
            }
        }
        return names;
    }

    /** The node's path as JavaRosa writes it: /root/group/repeat[2]/question (repeat positions 1-based). */
    static String path(TreeReference ref) {
        return ref.toString(true);
    }

    static ObjectNode event(ArrayNode events, String kind, TreeReference ref) {
        ObjectNode e = events.addObject();
        e.put("event", kind);
        e.put("path", path(ref));
        return e;
    }
}
